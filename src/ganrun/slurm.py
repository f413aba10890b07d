"""`TF_CONFIG` from the SLURM environment, for `train.strategy=multi_worker` under `srun`
(hydra/launcher=slurm with several nodes runs one task per node; see README "Scaling out").

TensorFlow's own `SlurmClusterResolver` reads the job step (SLURM_PROCID, SLURM_STEP_NUM_TASKS,
SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE) and expands the node list; this module only
turns its answer into the `TF_CONFIG` that MultiWorkerMirroredStrategy reads. Every task is a
`worker`; worker 0 is the chief (it writes the run directory).
"""

from __future__ import annotations

import os

import tensorflow as tf

# Ports of the workers' gRPC servers: task i on a node listens on BASE_PORT + i.
BASE_PORT = int(os.environ.get("GANRUN_SLURM_PORT", "8888"))


def in_job_step() -> bool:
    """True inside an `srun` step of more than one task (what multi_worker needs)."""
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in os.environ


def tf_config(base_port: int = BASE_PORT) -> dict:
    """{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}
    for this SLURM task. GPUs are left as SLURM assigned them (every GPU of the task's node
    is one replica of MirroredStrategy inside the worker)."""
    tasks = int(os.environ["SLURM_STEP_NUM_TASKS"])
    # GPU counts only matter to the resolver's own GPU assignment, which is off.
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        jobs={"worker": tasks}, port_base=base_port, gpus_per_node=tasks, gpus_per_task=1,
        auto_set_gpu=False)
    cluster = resolver.cluster_spec().as_dict()  # also sets the task's type and index
    task_type, task_id = resolver.get_task_info()
    return {"cluster": cluster, "task": {"type": task_type, "index": task_id}}
