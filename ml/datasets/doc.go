// Package datasets owns the data the learning paradigms train and test on:
// the Dataset type (row-major float32 features, integer labels, class
// names) with split, subset, shuffle and pooling helpers, and three real
// data sets that need no download at run time.
//
//   - Digits: the 1,797 8×8 handwritten digits of UCI (CC BY 4.0), as
//     scikit-learn ships them, embedded.
//   - FashionSubset: 20,000 training and 2,000 test Fashion-MNIST images
//     (MIT), class-balanced, downsampled to 14×14, embedded (2.9 MB).
//   - LoadFashionMNIST: the full 70,000 28×28 images, read from the files of
//     Debian's dataset-fashion-mnist package (or any directory holding the
//     four IDX files).
//
// README.md in this directory gives sources, licences, sizes and how the
// subset is regenerated (go run ./ml/datasets/internal/mkfashion).
//
// The package does not train anything (see package ml) and does not split
// data between clients (see package partition).
package datasets
