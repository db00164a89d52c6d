package incremental

import "hash/fnv"

// InTrainSet says whether the sample of key (its place in the job's data:
// a Dataset line, a labelled hard example's id) goes to the train set or
// to the eval set, with probability trainProb of the first, as Sedna
// splits new samples by trainProb. The split is a hash of the key, not a
// draw: a sample stays in its set across restarts and on every side that
// splits it. trainProb at or below 0 sends all to eval, at or above 1 all
// to train.
func InTrainSet(key string, trainProb float64) bool {
	if trainProb <= 0 {
		return false
	}
	if trainProb >= 1 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	// splitmix64's finalizer spreads FNV's low-entropy high bits.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < trainProb
}
