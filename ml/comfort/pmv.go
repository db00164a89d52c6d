package comfort

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid comfort input")

// Conditions are the inputs of Fanger's model: four of the environment and
// two of the person.
type Conditions struct {
	AirTemp     float64 // ta, air temperature, °C
	RadiantTemp float64 // tr, mean radiant temperature, °C
	AirSpeed    float64 // var, relative air speed, m/s
	Humidity    float64 // RH, relative humidity, %
	Met         float64 // M, metabolic rate, met (1 met = 58.15 W/m²)
	Clo         float64 // Icl, clothing insulation, clo (1 clo = 0.155 m²·K/W)
	Work        float64 // W, external work, met; 0 for office work
}

// Result is Fanger's PMV with what it is derived from.
type Result struct {
	PMV          float64 // predicted mean vote, -3 (cold) to +3 (hot)
	PPD          float64 // predicted percentage dissatisfied, 5 to 100
	ClothingTemp float64 // tcl, surface temperature of the clothing, °C
}

// Physical constants of ISO 7730:2005, section 4.1.
const (
	wattsPerMet = 58.15
	m2kwPerClo  = 0.155
	kelvin      = 273 // ISO 7730 adds 273, not 273.15
	sigmaEps    = 3.96e-8
)

// PMV computes Fanger's predicted mean vote and the predicted percentage
// dissatisfied as ISO 7730:2005 (section 4 and Annex D) defines them:
//
//	PMV = (0.303·e^(−0.036·M) + 0.028) · [ (M−W)
//	      − 3.05e-3·(5733 − 6.99·(M−W) − pa)          skin diffusion
//	      − 0.42·((M−W) − 58.15)                       sweating (not below 0)
//	      − 1.7e-5·M·(5867 − pa)                        latent respiration
//	      − 0.0014·M·(34 − ta)                          dry respiration
//	      − 3.96e-8·fcl·((tcl+273)⁴ − (tr+273)⁴)        radiation
//	      − fcl·hc·(tcl − ta) ]                          convection
//
// with M and W in W/m², pa = RH·10·e^(16.6536 − 4030.183/(ta+235)) the
// water vapour pressure in Pa, fcl the clothing area factor and hc the
// convective heat transfer coefficient, max(2.38·|tcl−ta|^0.25, 12.1·√var).
// The clothing surface temperature tcl solves
//
//	tcl = 35.7 − 0.028·(M−W) − Icl·(3.96e-8·fcl·((tcl+273)⁴ − (tr+273)⁴) + fcl·hc·(tcl−ta))
//
// whose right side falls as tcl rises, so it has one root; PMV finds it by
// bisection to 1e-9 °C.
//
// ISO 7730 recommends the model for 0.8–4 met, 0–2 clo, ta 10–30 °C, tr
// 10–40 °C, var 0–1 m/s and pa 0–2700 Pa; PMV computes outside those ranges
// too and refuses only values with no physical meaning.
func PMV(c Conditions) (Result, error) {
	switch {
	case !finite(c.AirTemp, c.RadiantTemp, c.AirSpeed, c.Humidity, c.Met, c.Clo, c.Work):
		return Result{}, fmt.Errorf("comfort: pmv: %w: a value is not finite: %+v", ErrInvalid, c)
	case c.AirTemp < -50 || c.AirTemp > 60 || c.RadiantTemp < -50 || c.RadiantTemp > 100:
		return Result{}, fmt.Errorf("comfort: pmv: %w: temperatures %.1f/%.1f °C", ErrInvalid, c.AirTemp, c.RadiantTemp)
	case c.AirSpeed < 0 || c.Humidity < 0 || c.Humidity > 100:
		return Result{}, fmt.Errorf("comfort: pmv: %w: air speed %v m/s, humidity %v%%", ErrInvalid, c.AirSpeed, c.Humidity)
	case c.Met <= 0 || c.Clo < 0 || c.Work < 0 || c.Work >= c.Met:
		return Result{}, fmt.Errorf("comfort: pmv: %w: %v met, %v clo, work %v met", ErrInvalid, c.Met, c.Clo, c.Work)
	}
	ta, tr := c.AirTemp, c.RadiantTemp
	m := c.Met * wattsPerMet
	mw := m - c.Work*wattsPerMet
	icl := c.Clo * m2kwPerClo
	pa := c.Humidity * 10 * math.Exp(16.6536-4030.183/(ta+235))
	fcl := 1.05 + 0.645*icl
	if icl <= 0.078 {
		fcl = 1 + 1.29*icl
	}
	hcForced := 12.1 * math.Sqrt(c.AirSpeed)
	trK4 := math.Pow(tr+kelvin, 4)
	hc := func(tcl float64) float64 {
		return math.Max(2.38*math.Pow(math.Abs(tcl-ta), 0.25), hcForced)
	}
	// residual is positive above the root and negative below it.
	residual := func(tcl float64) float64 {
		losses := sigmaEps*fcl*(math.Pow(tcl+kelvin, 4)-trK4) + fcl*hc(tcl)*(tcl-ta)
		return tcl - (35.7 - 0.028*mw - icl*losses)
	}
	lo, hi := math.Min(ta, tr)-1, 35.7-0.028*mw+1
	if lo >= hi { // the root lies between the skin and the environment
		lo, hi = hi-2, lo+2
	}
	for residual(lo) > 0 {
		lo -= 10
	}
	for residual(hi) < 0 {
		hi += 10
	}
	for hi-lo > 1e-9 {
		mid := (lo + hi) / 2
		if residual(mid) > 0 {
			hi = mid
		} else {
			lo = mid
		}
	}
	tcl := (lo + hi) / 2

	skin := 3.05e-3 * (5733 - 6.99*mw - pa)
	sweat := math.Max(0.42*(mw-wattsPerMet), 0)
	latentResp := 1.7e-5 * m * (5867 - pa)
	dryResp := 0.0014 * m * (34 - ta)
	radiation := sigmaEps * fcl * (math.Pow(tcl+kelvin, 4) - trK4)
	convection := fcl * hc(tcl) * (tcl - ta)
	pmv := (0.303*math.Exp(-0.036*m) + 0.028) * (mw - skin - sweat - latentResp - dryResp - radiation - convection)
	return Result{PMV: pmv, PPD: PPD(pmv), ClothingTemp: tcl}, nil
}

// PPD is the predicted percentage of dissatisfied for a PMV (ISO 7730,
// equation 5): 100 − 95·e^(−0.03353·PMV⁴ − 0.2179·PMV²), 5% at PMV 0.
func PPD(pmv float64) float64 {
	p2 := pmv * pmv
	return 100 - 95*math.Exp(-0.03353*p2*p2-0.2179*p2)
}

func finite(v ...float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
