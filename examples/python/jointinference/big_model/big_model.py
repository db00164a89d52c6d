"""The cloud model of a joint inference service written against Sedna's
lib, as Sedna's examples are (examples/joint_inference/
helmet_detection_inference/big_model/big_model.py): the same import, class
and call. Run on Sedna-Go with sdk/python on PYTHONPATH."""

from sedna.core.joint_inference import BigModelService

from interface import Estimator


def run():
    inference_instance = BigModelService(estimator=Estimator)
    inference_instance.start()


if __name__ == "__main__":
    run()
