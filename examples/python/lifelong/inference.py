"""A lifelong learning inference worker written against Sedna's lib, in
the shape of Sedna's thermal-comfort example's inference.py: it reads
surveys from a CSV file (infer_dataset_url), a row at a time, answers each
with the job's knowledge base and writes the answers beside it, the rows
of unseen tasks in a file of their own. Sedna-Go's node keeps those
samples for labelling too (they are published to it). As Sedna's
example, it waits for more rows at the end of its file."""

import csv
import json
import os
import time

from sedna.common.config import Context
from sedna.datasources import CSVDataParse
from sedna.core.lifelong_learning import LifelongLearning

from interface import DATACONF, Estimator, feature_process


def main():
    attribute = json.dumps({"attribute": DATACONF["ATTRIBUTES"]})
    ut_saved_url = Context.get_parameters("UTD_SAVED_URL", "/tmp")

    task_mining = {
        "method": "TaskMiningByDataAttr",
        "param": attribute
    }

    ll_job = LifelongLearning(
        estimator=Estimator,
        task_mining=task_mining,
        task_definition=None,
        task_relationship_discovery=None,
        task_remodeling=None,
        inference_integrate=None,
        unseen_task_detect=None)

    infer_dataset_url = Context.get_parameters('infer_dataset_url')
    file_handle = open(infer_dataset_url, "r", encoding="utf-8")
    header = list(csv.reader([file_handle.readline().strip()]))[0]
    infer_data = CSVDataParse(data_type="test", func=feature_process)

    # Line-buffered: each answer is in the file once it is answered.
    unseen_sample = open(os.path.join(ut_saved_url, "unseen_sample.csv"),
                         "w", encoding="utf-8", buffering=1)
    unseen_sample.write("\t".join(header + ['pred']) + "\n")
    output_sample = open(f"{infer_dataset_url}_out.csv", "w", encoding="utf-8", buffering=1)
    output_sample.write("\t".join(header + ['pred']) + "\n")

    while 1:
        where = file_handle.tell()
        line = file_handle.readline()
        if not line.endswith("\n"):  # the end of the file, or a row still being written
            time.sleep(1)
            file_handle.seek(where)
            continue
        if not line.strip():
            continue
        reader = list(csv.reader([line.strip()]))
        rows = reader[0]
        data = dict(zip(header, rows))
        infer_data.parse(data, label=DATACONF["LABEL"])
        rsl, is_unseen, target_task = ll_job.inference(infer_data)

        rows.append(list(rsl)[0])

        output = "\t".join(map(str, rows)) + "\n"
        if is_unseen:
            unseen_sample.write(output)
        output_sample.write(output)


if __name__ == '__main__':
    print(main())
