package comfort_test

import (
	"fmt"

	"github.com/sedna-go/sedna/ml/comfort"
)

// Fanger's PMV for an office: 22 °C, still air, 60% humidity, seated work,
// summer clothing (the first row of ISO 7730's reference table).
func ExamplePMV() {
	r, err := comfort.PMV(comfort.Conditions{AirTemp: 22, RadiantTemp: 22, AirSpeed: 0.1, Humidity: 60, Met: 1.2, Clo: 0.5})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("PMV %.2f, PPD %.0f%%\n", r.PMV, r.PPD)
	// Output:
	// PMV -0.75, PPD 17%
}

// Generate survey answers for one task and turn them into a data set.
func ExampleGenerate() {
	task, _ := comfort.ParseTask("tropical-summer-nv")
	samples, err := comfort.Generate(task, 1000, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	counts := make([]int, 3)
	for _, s := range samples {
		counts[s.Preference]++
	}
	d, _ := comfort.ToDataset(task.Name(), samples)
	fmt.Println(d.Name, d.Rows, "samples of", d.Cols, "features")
	fmt.Println("most want no change or cooler:", counts[comfort.NoChange]+counts[comfort.PreferCooler] > 900)
	// Output:
	// tropical-summer-nv 1000 samples of 7 features
	// most want no change or cooler: true
}
