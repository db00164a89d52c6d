// Package cluster groups samples without labels: k-means (k-means++
// seeding, Lloyd's iterations, the best of several restarts), the number of
// clusters chosen from the data by the mean silhouette, and the adjusted
// Rand index that scores a grouping against the truth.
//
// Lifelong learning uses it to define tasks when a job names no attribute:
// each cluster of the samples' features is a task, and the nearest centre
// allocates a new sample to one (or, too far from every centre, to none:
// an unseen task). All randomness comes from the seed.
package cluster
