"""An incremental learning inference worker written against Sedna's lib,
as Sedna's examples are (examples/incremental_learning/helmet_detection/
training/inference.py): frames from a camera, IncrementalLearning's
inference on each. The camera here is a NumPy file of 8-bit frames
(video_url), played again and again; a JSON line per frame goes to
infer_output, with the model (name/version) that answered. On Sedna-Go the
library hands each answered frame to the node, which keeps the hard ones
for labelling, and a deployed model reaches it by Sedna's hot update."""

import json
import time

import numpy as np

from sedna.common.config import Context
from sedna.core.incremental_learning import IncrementalLearning

from interface import Estimator


def main():
    hard_example_mining = IncrementalLearning.get_hem_algorithm_from_config()
    incremental_instance = IncrementalLearning(estimator=Estimator, hard_example_mining=hard_example_mining)
    frames = np.load(Context.get_parameters("video_url"))
    with open(Context.get_parameters("infer_output"), "a") as out:
        i = 0
        while True:
            frame = i % len(frames)
            img = frames[frame].astype(np.float32) / 255.0
            infer_res, _, is_hard = incremental_instance.inference(img)
            model = f"{incremental_instance.model_name}/{incremental_instance.model_version}"
            out.write(json.dumps({"frame": frame, "class": int(np.argmax(infer_res)), "hard": is_hard, "model": model}) + "\n")
            out.flush()
            i += 1
            time.sleep(0.002)  # the camera's frame rate


if __name__ == "__main__":
    main()
