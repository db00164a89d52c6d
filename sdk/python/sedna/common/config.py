"""Parameters from the environment, as Sedna's lib reads them: Context and
BaseConfig. Sedna-Go sets Sedna's worker environment (docs/WORKERS.md,
"Sedna's worker environment") beside its own SEDNA_* variables."""

import json
import os


class Context:
    """A worker's parameters: its environment, the template's env entries
    included."""

    @staticmethod
    def get_parameters(param, default=None):
        """The environment variable param, or its upper-case name, or
        default when neither is set or both are empty."""
        value = os.environ.get(param) or os.environ.get(str(param).upper())
        return value if value else default

    @staticmethod
    def get_algorithm_from_api(algorithm, **param):
        """{"method": ALGORITHM_NAME, "param": {...}} from ALGORITHM_NAME
        and ALGORITHM_PARAMETERS (Sedna's JSON list of {"key", "value"}),
        param overriding; {} when ALGORITHM_NAME is unset."""
        name = Context.get_parameters(f"{algorithm}_NAME")
        if not name:
            return {}
        values = {}
        raw = Context.get_parameters(f"{algorithm}_PARAMETERS")
        if raw:
            try:
                for kv in json.loads(raw):
                    values[kv["key"]] = kv.get("value", "")
            except (ValueError, KeyError, TypeError):
                values = {}
        values.update(param)
        return {"method": name, "param": values}


class BaseConfig:
    """Sedna's configuration names, read from the environment when the
    module is imported."""

    device_category = os.getenv("DEVICE_CATEGORY", "CPU")
    backend_type = os.getenv("BACKEND_TYPE", "UNKNOWN")
    lc_server = os.getenv("LC_SERVER", "")
    original_dataset_url = os.getenv("ORIGINAL_DATASET_URL", "")
    train_dataset_url = os.getenv("TRAIN_DATASET_URL", "")
    test_dataset_url = os.getenv("TEST_DATASET_URL", "")
    data_path_prefix = os.getenv("DATA_PATH_PREFIX", "")
    namespace = os.getenv("NAMESPACE", "")
    worker_name = os.getenv("WORKER_NAME", "")
    service_name = os.getenv("SERVICE_NAME", "")
    job_name = os.getenv("JOB_NAME", "sedna")
    pretrained_model_url = os.getenv("PRETRAINED_MODEL_URL", "./")
    model_url = os.getenv("MODEL_URL", "")
    model_name = os.getenv("MODEL_NAME", "")
    log_level = os.getenv("LOG_LEVEL", "INFO")
    parameters = os.getenv("PARAMETERS", "")

    def __init__(self):
        pass

    @classmethod
    def from_json(cls, data):
        for k, v in (data or {}).items():
            setattr(cls, k, v)
