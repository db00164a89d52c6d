"""The edge model of a joint inference service written against Sedna's
lib, as Sedna's examples are (examples/joint_inference/
helmet_detection_inference/little_model/little_model.py): frames from a
video, JointInference(estimator=Estimator, hard_example_mining=hem) and
inference on each frame. The "video" here is a NumPy file of 8-bit
frames (video_url); a line of JSON per frame goes to
all_examples_inference_output."""

import json

import numpy as np

from sedna.common.config import Context
from sedna.core.joint_inference import JointInference

from interface import Estimator


def main():
    hard_example_mining = JointInference.get_hem_algorithm_from_config()
    inference_instance = JointInference(estimator=Estimator, hard_example_mining=hard_example_mining)
    frames = np.load(Context.get_parameters("video_url"))
    out = Context.get_parameters("all_examples_inference_output")
    with open(out, "w") as f:
        for i, frame in enumerate(frames):
            img = frame.astype(np.float32) / 255.0
            is_hard, final, edge, cloud = inference_instance.inference(img)
            f.write(json.dumps({"frame": i, "hard": is_hard, "class": int(np.argmax(final)),
                                "edge": int(np.argmax(edge)), "cloud": None if cloud is None else int(np.argmax(cloud))}) + "\n")


if __name__ == "__main__":
    main()
