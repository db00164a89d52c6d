// Package comfort generates thermal-comfort survey data, a stand-in for the
// ASHRAE Global Thermal Comfort Database II that Sedna's lifelong-learning
// example trains on.
//
// PMV implements Fanger's predicted mean vote and PPD the predicted
// percentage dissatisfied, as ISO 7730:2005 defines them (with the
// iterative clothing surface temperature); they reproduce the standard's
// table of reference values within 0.01.
//
// Generate draws occupants of a Task — a climate (tropical, temperate,
// cold), a season (summer, winter) and a building type (air-conditioned or
// naturally ventilated) — with the conditions they meet, their PMV, their
// own sensation vote and a 3-class label: prefer warmer, no change, prefer
// cooler. Tasks differ in their conditions and in their judgement:
// occupants of naturally ventilated buildings expect the warmth (Fanger and
// Toftum's expectancy factor) and accept a wider band, and occupants of hot
// and cold climates prefer to feel slightly cool and slightly warm. A model
// trained on one task therefore judges another badly, which is what
// lifelong learning needs to show. Each task has three sites whose
// occupants meet the same conditions and prefer differently, which no
// feature shows. All randomness comes from the seed.
//
// The package does not train models (see ml) and ships no survey data.
package comfort
