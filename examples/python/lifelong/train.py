"""A lifelong learning train worker written against Sedna's lib, as
Sedna's thermal-comfort example is (examples/lifelong_learning/atcii/
train.py): the same imports, classes, methods and environment variables.
Run on Sedna-Go with sdk/python on PYTHONPATH."""

import json

from interface import DATACONF, Estimator, feature_process
from sedna.common.config import Context, BaseConfig
from sedna.datasources import CSVDataParse

from sedna.core.lifelong_learning import LifelongLearning


def main():
    # load dataset.
    train_dataset_url = BaseConfig.train_dataset_url
    train_data = CSVDataParse(data_type="train", func=feature_process)
    train_data.parse(train_dataset_url, label=DATACONF["LABEL"])

    learning_rate = float(Context.get_parameters("learning_rate", 0.001))
    ll_job = LifelongLearning(
        estimator=Estimator,
        task_definition="TaskDefinitionByDataAttr",
        task_definition_param=json.dumps({"attribute": DATACONF["ATTRIBUTES"]})
    )
    return ll_job.train(train_data=train_data, learning_rate=learning_rate)


if __name__ == '__main__':
    print(main())
