"""A lifelong learning eval worker written against Sedna's lib, as
Sedna's thermal-comfort example's eval.py is."""

import json

from interface import DATACONF, Estimator, feature_process
from sedna.common.config import Context, BaseConfig
from sedna.datasources import CSVDataParse

from sedna.core.lifelong_learning import LifelongLearning


def main():
    test_dataset_url = BaseConfig.test_dataset_url
    valid_data = CSVDataParse(data_type="test", func=feature_process)
    valid_data.parse(test_dataset_url, label=DATACONF["LABEL"])

    model_threshold = float(Context.get_parameters('model_threshold', 0))

    ll_job = LifelongLearning(
        estimator=Estimator,
        task_definition="TaskDefinitionByDataAttr",
        task_definition_param=json.dumps({"attribute": DATACONF["ATTRIBUTES"]})
    )
    return ll_job.evaluate(
        data=valid_data, metrics="precision_score",
        metrics_param={"average": "micro"},
        model_threshold=model_threshold
    )


if __name__ == '__main__':
    print(main())
