// Package detect is a tiny object-detection stand-in, so that the
// box-based hard-example miners (IBT, Threshold) run on real model outputs
// the way Sedna's helmet-detection examples feed them: digits placed on a
// larger noisy canvas (Scenes), a sliding-window detector built from any
// ml.Model window classifier (Detector), boxes as
// [xmin, ymin, xmax, ymax, score, label] (Box.Array), and PASCAL VOC's mean
// average precision (MeanAveragePrecision).
//
// It is not a real detector: objects have one size, the window's. It does
// not train models itself; Patches cuts the training set, and package ml
// trains on it.
package detect
