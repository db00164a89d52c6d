package api_test

import (
	"fmt"

	"github.com/sedna-go/sedna/api"
)

// Sedna's YAML parses unchanged; what Sedna-Go does not use is kept and
// listed, and each worker is placed by its template's nodeName.
func Example() {
	doc := `apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata:
  name: surface-defect-detection
spec:
  aggregationWorker:
    model: {name: surface-defect-detection-model}
    template:
      spec:
        nodeName: cloud
        containers:
          - image: kubeedge/sedna-example-federated-learning-surface-defect-detection-aggregation:v0.3.0
            env: [{name: exit_round, value: "3"}]
  trainingWorkers:
    - dataset: {name: edge1-dataset}
      template: {spec: {nodeName: edge1, containers: [{image: train:v0.3.0, imagePullPolicy: IfNotPresent}]}}
`
	rs, err := api.Parse([]byte(doc), "fl.yaml")
	if err != nil {
		panic(err)
	}
	r := rs[0]
	fmt.Println(r.Key(), api.Validate(r, api.Admission{}))
	for _, w := range r.Workers() {
		fmt.Println(w.Role, "on", w.Node, w.Params)
	}
	fmt.Println("ignored:", r.Ignored)
	// Output:
	// FederatedLearningJob/default/surface-defect-detection <nil>
	// aggregation on cloud map[exit_round:3]
	// train-0 on edge1 map[]
	// ignored: [spec.trainingWorkers[0].template.spec.containers[0].imagePullPolicy]
}
