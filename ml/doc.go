// Package ml is Sedna-Go's learning substrate: small classifiers trained
// and served in pure Go on a couple of CPU cores, with no GPU and nothing
// downloaded at run time.
//
// It owns:
//
//   - the Model interface every learning paradigm works with (fit, predict
//     probabilities, flat float32 weights for federated averaging, a sample
//     count, a versioned binary form);
//   - Network, its implementation: softmax regression (NewSoftmax) or a
//     multilayer perceptron with one or two ReLU hidden layers (NewMLP),
//     trained by mini-batch SGD with momentum or by Adam (FitOptions);
//   - metrics: accuracy, precision, recall and F1 (micro and macro), the
//     confusion matrix, log loss;
//   - the binary format: magic "SDML", a format version, the model kind and
//     shape, float32 little-endian weights and a CRC-32. A foreign,
//     truncated, corrupted or newer blob is refused with an error that
//     errors.Is matches to ErrBadMagic, ErrTruncated, ErrChecksum,
//     ErrUnsupportedVersion or ErrMalformed.
//
// Training is deterministic: the same seeds, data and starting weights give
// the same weights, bit for bit, on one architecture, whatever the number
// of CPUs and whether or not the race detector is on. Invalid input (shapes
// that do not match, NaN, labels out of range, empty data) is an error
// wrapping ErrInvalidInput, never a panic.
//
// Data sets live in package ml/datasets, partitioners for fleets in
// ml/partition, the thermal-comfort generator in ml/comfort and the
// object-detection stand-in in ml/detect. Package ml imports none of them,
// nor anything else of the project; docs/ML.md describes the whole tree.
package ml
