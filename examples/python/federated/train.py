"""A federated learning training worker written against Sedna's lib, as
Sedna's examples are (examples/federated_learning/surface_defect_detection/
training_worker/train.py): the same imports, classes, methods and
environment variables. Run on Sedna-Go with sdk/python on PYTHONPATH, as a
FederatedLearningJob's training worker (its template's command): its
updates are averaged with the built-in Go workers' in the same rounds.

The Dataset is a CSV file, label,f1,f2,... (examples/federated/digits);
TRAIN_DATASET_URL names it (FederatedLearning finds it from the job's
spec when the agent did not set it)."""

from sedna.common.config import Context, BaseConfig
from sedna.datasources import CSVDataParse
from sedna.core.federated_learning import FederatedLearning

from interface import Estimator


def main():
    epochs = int(Context.get_parameters("epochs", 1))
    batch_size = int(Context.get_parameters("batch_size", 32))
    learning_rate = float(Context.get_parameters("learning_rate", 0.05))
    aggregation_algorithm = Context.get_parameters("aggregation_algorithm", "FedAvg")

    fl_model = FederatedLearning(estimator=Estimator, aggregation=aggregation_algorithm)

    train_data = CSVDataParse(data_type="train")
    train_data.parse(BaseConfig.train_dataset_url, label="label")

    return fl_model.train(train_data=train_data, valid_data=None, epochs=epochs,
                          batch_size=batch_size, learning_rate=learning_rate)


if __name__ == "__main__":
    main()
