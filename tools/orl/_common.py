# Copyright (c) cribo-mm contributors. All rights reserved.
"""Shared set-up of the ORL stage-2 tools (not a command)."""
import json
import os
import os.path as osp
import sys
from typing import Optional

# Running from a checkout without installing: make ``cribo_mm`` importable.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def setup():
    """Register cribo_mm and make 'mmpretrain' the default scope."""
    from mmengine.registry import init_default_scope

    import cribo_mm  # noqa: F401
    init_default_scope('mmpretrain')


def load_config(path, options=None):
    """Read a config, apply ``--cfg-options``.

    Args:
        path (str): Config file.
        options (dict, optional): Dotted overrides.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def dump_json(obj, path):
    """Write ``obj`` to ``path`` atomically (parent folders created)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def add_shard_args(parser) -> None:
    """Options shared by the sharded, resumable stage-2 tools."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='run one shard per process of a torchrun / Slurm job; rank 0 '
        'merges')
    parser.add_argument(
        '--shard',
        default=None,
        help="i/n: run only shard i of n without a process group (e.g. a "
        "Slurm job array); a later run without --shard finishes what is "
        "missing and merges")
    parser.add_argument(
        '--work-dir',
        default=None,
        help='where finished chunks are kept, so that an interrupted run '
        'resumes (default: <out>.work)')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=256,
        help='images per stored chunk')


def init_shards(args):
    """Start the process group of ``--launcher``; return the shard.

    Args:
        args (argparse.Namespace): With ``launcher`` and ``shard``.

    Returns:
        tuple[int, int] | None: ``(index, count)`` of ``--shard``, or None
        (the process group's rank and size, ``(0, 1)`` without one).
    """
    from cribo_mm.utils.sharded_job import parse_shard
    shard = parse_shard(args.shard)
    if args.launcher != 'none':
        if shard is not None:
            raise ValueError('--shard and --launcher are exclusive')
        import torch
        if args.launcher == 'slurm' and not torch.cuda.is_available():
            # mmengine's Slurm set-up picks a GPU per task (no CPU path).
            raise ValueError(
                '--launcher slurm needs GPUs; on CPU nodes run a job array '
                'with --shard ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}'
                ' (or torchrun with --launcher pytorch)')
        from mmengine.dist import init_dist
        if args.launcher == 'pytorch':
            # a rank must not outlive torchrun (e.g. after kill -9 of it)
            from cribo_mm.utils.dist_faults import die_with_parent
            die_with_parent()

        # Ranks wait at barriers for the slowest shard: allow long waits
        # (mmengine takes seconds).
        init_dist(args.launcher, timeout=24 * 3600)
    if args.work_dir is None:
        args.work_dir = f'{args.out}.work'
    return shard


def resolve_device(device: str) -> str:
    """``'cuda'`` becomes this process's GPU under torchrun / Slurm."""
    if device == 'cuda':
        return f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    return device


def file_signature(path: str) -> dict:
    """What identifies an input file in a job's settings: its SHA-256.

    A checkpoint retrained in place keeps its name and often its size, so
    only the content tells whether stored chunks may be reused.
    """
    if path is None or not osp.isfile(path):
        return dict(path=path)
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            digest.update(block)
    return dict(name=osp.basename(path), sha256=digest.hexdigest())


def names_digest(names) -> str:
    """A short digest of an image list (job settings)."""
    import hashlib
    return hashlib.sha1('\n'.join(names).encode()).hexdigest()[:16]


class ShardProgress:
    """A progress bar over this shard's pending items (rank 0 / manual).

    Args:
        total (int): Items to do.
        show (bool): Draw the bar.
        title (str, optional): Title of the bar / prefix of the lines.
    """

    def __init__(self,
                 total: int,
                 show: bool = True,
                 title: Optional[str] = None) -> None:
        from cribo_mm.utils.progress import make_progress

        # a bar on a terminal, plain lines when piped
        self.bar = make_progress(total, title=title) \
            if show and total else None
        self.done = 0

    @classmethod
    def for_chunks(cls, job, chunks) -> 'ShardProgress':
        """A bar over the items of ``chunks`` of ``job``, drawn by one
        process per job: rank 0 of a process group, or each hand-started
        shard (which has no process group)."""
        from mmengine.dist import get_rank
        return cls(
            sum(len(job.chunk_range(c)) for c in chunks),
            show=get_rank() == 0,
            title=osp.basename(osp.normpath(job.folder)))

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items."""
        self.done += n
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        """End the bar's line."""
        if self.bar is not None:
            self.bar.close()


def all_done(job, what: str) -> bool:
    """Wait for the other ranks; tell whether every chunk is done.

    Args:
        job (ShardedJob): The job.
        what (str): Name of the job for messages.

    Returns:
        bool: True when no chunk is missing (on every rank).
    """
    from mmengine.dist import barrier
    barrier()
    missing = job.missing()
    if missing:
        index, count = job.shard
        print(f'{what}: shard {index}/{count} done; {len(missing)} of '
              f'{job.num_chunks} chunks belong to other shards. When they '
              'are done, run the command again without --shard to finish.')
    return not missing


def finish_shard(job, what: str) -> bool:
    """Wait for the other ranks; tell whether this process merges.

    Args:
        job (ShardedJob): The job.
        what (str): Name of the job for messages.

    Returns:
        bool: True on rank 0 when every chunk is done.
    """
    from mmengine.dist import get_rank
    return all_done(job, what) and get_rank() == 0
