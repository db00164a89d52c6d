package api

import (
	"sort"
	"strconv"
	"strings"
)

// The fields Sedna's CRDs define (sedna.io/v1alpha1, the releases with
// pod templates: v0.3 to the latest), as paths: "[]" is an item of a list,
// "*" anything below. A field outside these is unknown: `sedna apply`
// warns about it, as kubectl does, and refuses it with --strict. A known
// field Sedna-Go does not use is only listed in Resource.Ignored.
var sednaFields = map[string][]string{
	KindDataset: {"spec.url", "spec.format", "spec.nodeName", "spec.credentialName"},
	// spec.metrics is Sedna-Go's (Sedna keeps a Model's metrics in its
	// status only).
	KindModel: {"spec.url", "spec.format", "spec.credentialName", "spec.devices[]",
		"spec.classes[]", "spec.description", "spec.purpose", "spec.extra[].name", "spec.extra[].value",
		"spec.metrics[].key", "spec.metrics[].value",
		// Sedna-Go's: what an ONNX model's graph takes and gives (ModelIO).
		"spec.inputs[].name", "spec.inputs[].shape[]", "spec.outputs[].name", "spec.outputs[].shape[]",
		"spec.preprocess.scale", "spec.preprocess.mean[]", "spec.preprocess.std[]", "spec.preprocess.layout",
		"spec.postprocess"},
	KindJointInferenceService: {
		"spec.edgeWorker.model.name",
		"spec.edgeWorker.hardExampleMining.name", "spec.edgeWorker.hardExampleMining.parameters[].key", "spec.edgeWorker.hardExampleMining.parameters[].value",
		"spec.edgeWorker.template=pod", "spec.edgeWorker.hpa=hpa",
		"spec.cloudWorker.model.name", "spec.cloudWorker.template=pod", "spec.cloudWorker.hpa=hpa",
	},
	KindIncrementalLearningJob: {
		"spec.dataset.name", "spec.dataset.trainProb", "spec.initialModel.name", "spec.credentialName", "spec.outputDir",
		"spec.trainSpec.template=pod", "spec.trainSpec.trigger=trigger",
		"spec.evalSpec.template=pod", "spec.evalSpec.initialEvalModel.name",
		"spec.deploySpec.model.name", "spec.deploySpec.model.hotUpdateEnabled", "spec.deploySpec.model.pollPeriodSeconds",
		"spec.deploySpec.trigger=trigger",
		"spec.deploySpec.hardExampleMining.name", "spec.deploySpec.hardExampleMining.parameters[].key", "spec.deploySpec.hardExampleMining.parameters[].value",
		"spec.deploySpec.template=pod",
		// Sedna-Go's: when the job ends.
		"spec.stopCondition.maxCycles", "spec.stopCondition.target.operator", "spec.stopCondition.target.threshold",
		"spec.stopCondition.target.metric",
	},
	KindFederatedLearningJob: {
		"spec.aggregationWorker.model.name", "spec.aggregationWorker.template=pod",
		"spec.trainingWorkers[].dataset.name", "spec.trainingWorkers[].template=pod",
		"spec.pretrainedModel.name",
		"spec.transmitter.ws.*", "spec.transmitter.s3.aggDataPath", "spec.transmitter.s3.credentialName",
	},
	KindLifelongLearningJob: {
		"spec.dataset.name", "spec.dataset.trainProb", "spec.credentialName", "spec.outputDir",
		"spec.trainSpec.template=pod", "spec.trainSpec.trigger=trigger",
		"spec.evalSpec.template=pod", "spec.deploySpec.template=pod",
	},
}

// Parts the kinds share: a pod template (Kubernetes' PodTemplateSpec: its
// metadata, the fields of its PodSpec and of each container; what lies
// below those is Kubernetes' to check), a trigger, an autoscaler.
var sharedFields = map[string][]string{
	"trigger": {"checkPeriodSeconds", "timer.start", "timer.end",
		"condition.operator", "condition.threshold", "condition.metric"},
	"hpa": {"minReplicas", "maxReplicas", "metrics.*", "behavior.*"},
	"pod": append([]string{"metadata.*"}, prefixed("spec.", podSpecFields,
		map[string]string{"containers": "[]=container", "initContainers": "[]=container", "ephemeralContainers": "[]=ephemeral"})...),
	"container": prefixed("", containerFields, nil),
	"ephemeral": append(prefixed("", containerFields, nil), "targetContainerName"),
}

// podSpecFields and containerFields are Kubernetes' (core/v1, 1.35).
var podSpecFields = []string{"activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig",
	"dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers",
	"hostname", "hostnameOverride", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead",
	"preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources", "restartPolicy",
	"runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount", "serviceAccountName",
	"setHostnameAsFQDN", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds", "tolerations",
	"topologySpreadConstraints", "volumes"}

var containerFields = []string{"args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe",
	"name", "ports", "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext",
	"startupProbe", "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices",
	"volumeMounts", "workingDir"}

// prefixed makes paths prefix+name, each with "*" below unless special
// says what it is.
func prefixed(prefix string, names []string, special map[string]string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		if s, ok := special[n]; ok {
			out[i] = prefix + n + s
		} else {
			out[i] = prefix + n + ".*"
		}
	}
	return out
}

// SednaOnlyKinds are the kinds Sedna defines that Sedna-Go does not run
// yet: a document of one is refused with a line saying so.
var SednaOnlyKinds = []string{"FeatureExtractionService", "ReidJob", "VideoAnalyticsJob", "ObjectSearchService",
	"ObjectTrackingService", "MultiEdgeTrackingService", "DNNPartitioningService", "LLMJointInferenceService"}

// schemaNode is a field and the fields it may hold; any is set where
// anything below is accepted.
type schemaNode struct {
	children map[string]*schemaNode
	any      bool
}

func (n *schemaNode) child(k string) *schemaNode {
	if n.children == nil {
		n.children = map[string]*schemaNode{}
	}
	c, ok := n.children[k]
	if !ok {
		c = &schemaNode{}
		n.children[k] = c
	}
	return c
}

// add adds a path: "a.b[].c", "a.*", "a.template=pod" (the shared part
// pod below a.template), "a[]=container".
func (n *schemaNode) add(path string) {
	path, shared, _ := strings.Cut(path, "=")
	cur := n
	for _, seg := range strings.Split(path, ".") {
		if seg == "*" {
			cur.any = true
			return
		}
		list := strings.HasSuffix(seg, "[]")
		if name := strings.TrimSuffix(seg, "[]"); name != "" {
			cur = cur.child(name)
		}
		if list {
			cur = cur.child("[]")
		}
	}
	if shared != "" {
		for _, p := range sharedFields[shared] {
			cur.add(p)
		}
	}
}

// schemas are the known fields of each kind, the whole document.
var schemas = func() map[string]*schemaNode {
	out := map[string]*schemaNode{}
	for kind, paths := range sednaFields {
		root := &schemaNode{}
		for _, p := range []string{"apiVersion", "kind", "status.*", "metadata.name", "metadata.namespace",
			"metadata.labels.*", "metadata.annotations.*", "metadata.uid", "metadata.resourceVersion", "metadata.generation",
			"metadata.creationTimestamp", "metadata.deletionTimestamp", "metadata.deletionGracePeriodSeconds",
			"metadata.generateName", "metadata.ownerReferences.*", "metadata.finalizers.*", "metadata.managedFields.*",
			"metadata.selfLink"} {
			root.add(p)
		}
		for _, p := range paths {
			root.add(p)
		}
		out[kind] = root
	}
	return out
}()

// unknownFields lists the paths of doc (the generic form of a document)
// that the kind's schema does not define, sorted.
func unknownFields(kind string, doc any) []string {
	root, ok := schemas[kind]
	if !ok {
		return nil
	}
	var out []string
	var walk func(prefix string, v any, n *schemaNode)
	walk = func(prefix string, v any, n *schemaNode) {
		if n.any {
			return
		}
		switch d := v.(type) {
		case map[string]any:
			for k, cv := range d {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				c, ok := n.children[k]
				if !ok {
					out = append(out, p)
					continue
				}
				walk(p, cv, c)
			}
		case []any:
			item, ok := n.children["[]"]
			if !ok {
				return
			}
			for i, cv := range d {
				walk(prefix+"["+strconv.Itoa(i)+"]", cv, item)
			}
		}
	}
	walk("", doc, root)
	sort.Strings(out)
	return out
}
