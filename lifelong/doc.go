// Package lifelong is Sedna's fourth paradigm, being built (issue 18):
// the edge meets data of many tasks, keeps a knowledge base of tasks and
// their models, routes each sample to its task's model, recognises
// samples of tasks it has never seen, and learns those without
// forgetting the old ones.
//
// KB is the knowledge base's learning core: tasks defined by the
// samples' attribute (Sedna's default) or, without one, by a Gaussian
// mixture over their features (the number of tasks chosen by the ICL);
// a model per task; unseen-task recognition by attribute, or by a
// window of a source's samples that the mixture does not explain, an
// unseen sample being answered by its nearest task's model. A KB encodes
// without its samples (MarshalBinary, Unmarshal), as the edge gets it.
package lifelong
