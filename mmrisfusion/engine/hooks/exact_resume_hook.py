"""Resume a killed run exactly where it stopped: random states in the checkpoint."""
import functools
import logging
import random
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import (
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    Runner,
    find_latest_checkpoint,
)
from mmengine.runner.loops import _InfiniteDataloaderIterator

from mmrisfusion.registry import HOOKS

#: The checkpoint key of what this hook saves.
CHECKPOINT_KEY = 'random_states'


def capture_random_states() -> dict:
    """The states of torch's (CPU and CUDA), numpy's and Python's global generators.

    Returns:
        dict: Tensors, numbers and tuples only, so the checkpoint loads weights only.
    """
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states = dict(torch=torch.get_rng_state(),
                  numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=pos,
                             has_gauss=has_gauss, cached_gaussian=cached_gaussian),
                  python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Set the global generators to what :func:`capture_random_states` returned."""
    torch.set_rng_state(states['torch'])
    numpy_state = states['numpy']
    np.random.set_state((numpy_state['kind'], numpy_state['keys'].numpy().astype(np.uint32),
                         numpy_state['pos'], numpy_state['has_gauss'],
                         numpy_state['cached_gaussian']))
    random.setstate(states['python'])
    if 'cuda' in states and torch.cuda.is_available():
        for device, state in enumerate(states['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


class _RestoreAfterSkip:
    """The iteration loop's data iterator while mmengine skips the batches already trained.

    ``IterBasedTrainLoop`` fast-forwards a resumed run by loading (and dropping) every batch
    the checkpoint had seen, which draws random numbers in the data pipeline. The saved
    random states are set right before the first new batch, and the loop gets the plain
    iterator back.
    """

    def __init__(self, loop: IterBasedTrainLoop, states: dict) -> None:
        self.loop = loop
        self.states = states
        self.iterator = _InfiniteDataloaderIterator(loop.dataloader)
        self.to_skip = loop.iter

    def __iter__(self) -> '_RestoreAfterSkip':
        return self

    def __next__(self) -> Any:
        if self.to_skip > 0:
            self.to_skip -= 1
        else:
            restore_random_states(self.states)
            self.loop.dataloader_iterator = self.iterator
        return next(self.iterator)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make a killed and resumed run continue exactly as the uninterrupted one would.

    mmengine's checkpoints keep the weights, the optimizer, the schedulers and the counters,
    but not the random generators, so dropout, drop-path and random transforms draw other
    numbers after a resume, and a sampler whose seed came from an unseeded config shuffles
    in another order. This hook:

    - saves the global generators of every rank (torch CPU and CUDA, numpy, Python) as they
      are at the end of the last training iteration, and the train sampler's seed, in each
      checkpoint (key ``random_states``);
    - on resume, gives the sampler and the dataloader workers the run's seed again and
      restores the generators right before the first new batch (after the batches the
      iteration loop skips);
    - keeps validation out of the training's random stream (the generators are set back
      after every validation), so a run resumed from a checkpoint saved before a validation
      draws what the uninterrupted run drew after it;
    - resumes an epoch loop only at an epoch boundary: mmengine would restart a half-done
      epoch from its first batch (batches seen twice, more iterations than configured), so
      a checkpoint from the middle of an epoch is refused with the checkpoints that work.

    With these, a resumed run on the CPU equals the uninterrupted one bit for bit (weights,
    optimizer state, logged losses). On a GPU, non-deterministic kernels still make runs
    differ unless ``randomness.deterministic=True``. Under DDP every rank's states are
    gathered at the end of each iteration (a few kilobytes each); resuming with another
    number of processes restores none and says so.
    """

    priority = 'LOW'  # after the losses are logged, before the checkpoint is written

    def __init__(self) -> None:
        self._states: Optional[List[dict]] = None  # every rank's, at the last iteration's end
        self._resumed: Optional[dict] = None

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Remember every rank's random states as the iteration leaves them."""
        states = capture_random_states()
        self._states = all_gather_object(states) if get_world_size() > 1 else [states]

    def after_val(self, runner: Runner) -> None:
        """Set the generators back to where training left them."""
        if self._states is not None:
            restore_random_states(self._states[get_rank()])

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Store the states of the last training iteration and the sampler's seed."""
        if self._states is not None:
            checkpoint[CHECKPOINT_KEY] = dict(
                ranks=self._states,
                sampler_seed=getattr(runner.train_dataloader.sampler, 'seed', None))

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Keep the saved states until training starts (the Runner reseeds in between)."""
        self._resumed = dict(saved=checkpoint.get(CHECKPOINT_KEY),
                             iter=checkpoint.get('meta', {}).get('iter'),
                             filename=runner._load_from or find_latest_checkpoint(runner.work_dir))

    def before_train(self, runner: Runner) -> None:
        """On resume: align an epoch loop, give back the seeds, restore the generators."""
        resumed, self._resumed = self._resumed, None
        if resumed is None or runner.iter == 0 or runner.iter != resumed['iter']:
            return  # a new run, or weights loaded with load_from
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            self._align_epoch(loop, resumed['filename'])
        saved = resumed['saved']
        problem = None
        if saved is None:
            problem = 'holds no random states (saved without ExactResumeHook)'
        else:
            self._give_back_seeds(runner, saved['sampler_seed'])
        if saved is not None and len(saved['ranks']) != get_world_size():
            problem = (f'was saved by {len(saved["ranks"])} process(es), this run has '
                       f'{get_world_size()}')
        if problem is not None:
            print_log(f'ExactResumeHook: {resumed["filename"]} {problem}: the random generators '
                      'are not restored, so the resumed run draws other random numbers than '
                      'the uninterrupted one would have', logger='current',
                      level=logging.WARNING)
            return
        states = saved['ranks'][get_rank()]
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfterSkip(loop, states)
        else:
            restore_random_states(states)

    @staticmethod
    def _align_epoch(loop: EpochBasedTrainLoop, filename: str) -> None:
        """Refuse a checkpoint from the middle of an epoch; count a finished one."""
        per_epoch = len(loop.dataloader)
        done, rest = divmod(loop.iter, per_epoch)
        if rest:
            raise RuntimeError(
                f'{filename} was saved at iteration {loop.iter}, in the middle of epoch '
                f'{done + 1} ({per_epoch} iterations each). The epoch loop would restart that '
                'epoch from its first batch (batches seen twice, more iterations than '
                f'configured): resume from the checkpoint of epoch {done} or of iteration '
                f'{done * per_epoch} instead, or save checkpoints at epoch ends '
                '(default_hooks.checkpoint.by_epoch=True).')
        loop._epoch = done  # an iteration checkpoint at the end of an epoch counts it done

    @staticmethod
    def _give_back_seeds(runner: Runner, sampler_seed: Optional[int]) -> None:
        """The sampler and the worker initialisation get the resumed run's seeds.

        The Runner builds the dataloader before it reads the checkpoint's seed, so with an
        unseeded config the sampler and the workers would otherwise use a new random one.
        """
        dataloader = runner.train_dataloader
        if sampler_seed is not None and hasattr(dataloader.sampler, 'seed'):
            dataloader.sampler.seed = sampler_seed
        init = dataloader.worker_init_fn
        if (isinstance(init, functools.partial)
                and init.keywords.get('seed', runner.seed) != runner.seed):
            dataloader.worker_init_fn = functools.partial(
                init.func, *init.args, **dict(init.keywords, seed=runner.seed))
            # persistent workers the iteration loop started already: start them again
            dataloader._iterator = None
