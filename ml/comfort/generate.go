package comfort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sedna-go/sedna/ml/datasets"
)

// Climate, Season and Building say where and when a comfort survey was
// taken; together they name a Task.
type (
	// Climate is "tropical", "temperate" or "cold".
	Climate string
	// Season is "summer" or "winter".
	Season string
	// Building is "ac" (air-conditioned: heated and mechanically cooled)
	// or "nv" (naturally ventilated: windows and fans, heated in winter).
	Building string
)

// The values of Climate, Season and Building.
const (
	Tropical  Climate  = "tropical"
	Temperate Climate  = "temperate"
	Cold      Climate  = "cold"
	Summer    Season   = "summer"
	Winter    Season   = "winter"
	AC        Building = "ac"
	NV        Building = "nv"
)

// Task is one population of occupants: a climate, a season, a building
// type and a site (which building of that type). Tasks differ both in the
// conditions their occupants meet and in how they judge them (see Params).
type Task struct {
	Climate  Climate
	Season   Season
	Building Building
	// Site is which building of its kind, 0 to Sites−1: the occupants of
	// sites of one climate, season and building type meet the same
	// conditions but prefer differently (SiteShift), as neutral
	// temperatures differ from building to building in the field surveys
	// of de Dear and Brager's database.
	Site int
}

// Sites is how many sites each climate, season and building type has.
const Sites = 3

// SiteShift is what each site adds to its occupants' preferred sensation:
// site 0 prefers as its climate does, site 1 a warmer room (its occupants
// feel best at a sensation 0.6 higher, about 2 °C), site 2 a cooler one.
var SiteShift = [Sites]float64{0, 0.6, -0.6}

// Name is "climate-season-building", for example "tropical-summer-nv", with
// "-siteN" after it for sites other than 0.
func (t Task) Name() string {
	n := string(t.Climate) + "-" + string(t.Season) + "-" + string(t.Building)
	if t.Site != 0 {
		n += fmt.Sprintf("-site%d", t.Site)
	}
	return n
}

// Tasks returns the 12 tasks of site 0: every climate, season and building
// type.
func Tasks() []Task {
	var out []Task
	for _, c := range []Climate{Tropical, Temperate, Cold} {
		for _, s := range []Season{Summer, Winter} {
			for _, b := range []Building{AC, NV} {
				out = append(out, Task{Climate: c, Season: s, Building: b})
			}
		}
	}
	return out
}

// AllTasks returns the 36 tasks: Tasks at every site.
func AllTasks() []Task {
	var out []Task
	for _, t := range Tasks() {
		for s := range Sites {
			t.Site = s
			out = append(out, t)
		}
	}
	return out
}

// ParseTask is the inverse of Task.Name.
func ParseTask(name string) (Task, error) {
	for _, t := range AllTasks() {
		if t.Name() == strings.ToLower(name) {
			return t, nil
		}
	}
	return Task{}, fmt.Errorf("comfort: %w: unknown task %q", ErrInvalid, name)
}

// Params are the numbers that define a task's population; Task.Params
// derives them from the climate, season and building type, and docs/ML.md
// explains the choices.
type Params struct {
	OutdoorMean, OutdoorSD float64 // prevailing mean outdoor temperature, °C
	// Indoor air temperature: AC buildings hold a set point; NV buildings
	// follow the outdoors (IndoorBase + IndoorSlope·outdoor) but are heated
	// to at least HeatedMin.
	IndoorBase, IndoorSlope, IndoorSD, HeatedMin float64
	RadiantOffset                                float64 // tr − ta, mean, °C
	SpeedMin, SpeedMax                           float64 // air speed, m/s, uniform
	HumidityMin, HumidityMax                     float64 // %, uniform
	// Clothing follows the outdoors: ClothingBase − 0.02·outdoor, clamped.
	ClothingBase float64
	// Judgement: the sensation vote is Expectancy·PMV + noise; occupants
	// want no change while it is within Band of Preferred.
	Expectancy, Preferred, Band float64
}

// Params returns the parameters of the task's population.
func (t Task) Params() Params {
	p := Params{
		IndoorSD: 1.0, HeatedMin: 20, RadiantOffset: 0.3,
		SpeedMin: 0.05, SpeedMax: 0.2, Expectancy: 1, Band: 0.5,
	}
	switch t.Climate {
	case Tropical:
		p.OutdoorMean, p.OutdoorSD = 28.5, 1.5
		if t.Season == Winter {
			p.OutdoorMean, p.OutdoorSD = 24, 2
		}
		p.HumidityMin, p.HumidityMax = 60, 85
		p.ClothingBase = 1.05
		p.Preferred = -0.4 // occupants of hot climates prefer feeling slightly cool
	case Temperate:
		p.OutdoorMean, p.OutdoorSD = 21, 3
		if t.Season == Winter {
			p.OutdoorMean, p.OutdoorSD = 6, 4
		}
		p.HumidityMin, p.HumidityMax = 40, 65
		p.ClothingBase = 1.1
	case Cold:
		p.OutdoorMean, p.OutdoorSD = 16, 3
		if t.Season == Winter {
			p.OutdoorMean, p.OutdoorSD = -6, 6
		}
		p.HumidityMin, p.HumidityMax = 25, 50
		p.ClothingBase = 1.15
		p.Preferred = 0.3 // and of cold climates slightly warm
	}
	if t.Site >= 0 && t.Site < Sites {
		p.Preferred += SiteShift[t.Site]
	}
	switch t.Building {
	case AC:
		p.IndoorBase, p.IndoorSlope = 23.5, 0 // the cooling set point
		if t.Season == Winter {
			p.IndoorBase = 22
		}
		p.HumidityMin, p.HumidityMax = math.Max(p.HumidityMin-15, 30), math.Min(p.HumidityMax-15, 60)
	case NV:
		// Indoor temperature tracks the outdoors; occupants open windows
		// and run fans, expect the warmth and accept a wider band
		// (Fanger and Toftum's expectancy factor; de Dear and Brager's
		// adaptive comfort).
		p.IndoorBase, p.IndoorSlope, p.IndoorSD = 13, 0.55, 1.5
		p.RadiantOffset = 0.8
		p.SpeedMax = 0.8
		p.Band = 0.9
		p.Expectancy = map[Climate]float64{Tropical: 0.6, Temperate: 0.75, Cold: 0.9}[t.Climate]
		if t.Season == Winter {
			p.SpeedMax = 0.25
		}
	}
	return p
}

// Preference is the label: what the occupant would like.
type Preference int

// The three classes of the label.
const (
	PreferWarmer Preference = 0
	NoChange     Preference = 1
	PreferCooler Preference = 2
)

// PreferenceNames are the class names, indexed by Preference.
var PreferenceNames = []string{"prefer warmer", "no change", "prefer cooler"}

// Sample is one simulated survey answer.
type Sample struct {
	Conditions
	OutdoorTemp float64 // prevailing mean outdoor temperature, °C
	PMV, PPD    float64 // Fanger's prediction for the conditions
	Sensation   float64 // the occupant's own vote, -3 to +3
	Preference  Preference
	Task        string // Task.Name()
}

// Generate draws n survey answers of task t from seed: conditions from
// the task's parameters, Fanger's PMV for them, the occupant's sensation
// Expectancy·PMV + N(0, 0.35²) clipped to [-3, 3], and the preference:
// cooler above Preferred+Band, warmer below Preferred−Band, else no change.
func Generate(t Task, n int, seed uint64) ([]Sample, error) {
	if n < 1 {
		return nil, fmt.Errorf("comfort: generate: %w: %d samples", ErrInvalid, n)
	}
	if _, err := ParseTask(t.Name()); err != nil {
		return nil, err
	}
	p := t.Params()
	rng := rand.New(rand.NewPCG(seed, 0xc0f0))
	out := make([]Sample, n)
	for i := range out {
		tout := p.OutdoorMean + p.OutdoorSD*rng.NormFloat64()
		ta := p.IndoorBase + p.IndoorSlope*tout
		if t.Building == NV {
			ta = math.Max(ta, p.HeatedMin)
		}
		ta = clamp(ta+p.IndoorSD*rng.NormFloat64(), 14, 34)
		c := Conditions{
			AirTemp:     ta,
			RadiantTemp: clamp(ta+p.RadiantOffset+0.7*rng.NormFloat64(), 12, 38),
			AirSpeed:    p.SpeedMin + (p.SpeedMax-p.SpeedMin)*rng.Float64(),
			Humidity:    p.HumidityMin + (p.HumidityMax-p.HumidityMin)*rng.Float64(),
			Met:         clamp(1.15+0.1*rng.NormFloat64(), 1.0, 1.4),
			Clo:         clamp(p.ClothingBase-0.02*tout+0.12*rng.NormFloat64(), 0.3, 1.5),
		}
		r, err := PMV(c)
		if err != nil {
			return nil, fmt.Errorf("comfort: generate %s: %w", t.Name(), err)
		}
		s := Sample{Conditions: c, OutdoorTemp: tout, PMV: r.PMV, PPD: r.PPD, Task: t.Name()}
		s.Sensation = clamp(p.Expectancy*r.PMV+0.35*rng.NormFloat64(), -3, 3)
		switch d := s.Sensation - p.Preferred; {
		case d > p.Band:
			s.Preference = PreferCooler
		case d < -p.Band:
			s.Preference = PreferWarmer
		default:
			s.Preference = NoChange
		}
		out[i] = s
	}
	return out, nil
}

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// FeatureNames name the columns of Features, in order.
var FeatureNames = []string{"air temperature", "radiant temperature", "air speed", "humidity", "met", "clo", "outdoor temperature"}

// Features returns the sample's seven inputs, each shifted and scaled by
// fixed constants (not fitted to any data, so every task and every client
// scales alike): (ta−25)/5, (tr−25)/5, (v−0.3)/0.3, (RH−50)/20,
// (met−1.2)/0.2, (clo−0.7)/0.3, (outdoor−15)/10.
func (s Sample) Features() []float32 {
	return []float32{
		float32((s.AirTemp - 25) / 5), float32((s.RadiantTemp - 25) / 5),
		float32((s.AirSpeed - 0.3) / 0.3), float32((s.Humidity - 50) / 20),
		float32((s.Met - 1.2) / 0.2), float32((s.Clo - 0.7) / 0.3),
		float32((s.OutdoorTemp - 15) / 10),
	}
}

// ToDataset turns samples into a data set: Features as X, Preference as Y.
func ToDataset(name string, samples []Sample) (*datasets.Dataset, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("comfort: dataset %s: %w: no samples", name, ErrInvalid)
	}
	d := &datasets.Dataset{
		Name: name, Rows: len(samples), Cols: len(FeatureNames),
		X:       make([]float32, 0, len(samples)*len(FeatureNames)),
		Y:       make([]int, len(samples)),
		Classes: append([]string(nil), PreferenceNames...),
	}
	for i, s := range samples {
		d.X = append(d.X, s.Features()...)
		d.Y[i] = int(s.Preference)
	}
	return d, d.Validate()
}

// GenerateDataset is Generate followed by ToDataset, named after the task.
func GenerateDataset(t Task, n int, seed uint64) (*datasets.Dataset, error) {
	s, err := Generate(t, n, seed)
	if err != nil {
		return nil, err
	}
	return ToDataset(t.Name(), s)
}
