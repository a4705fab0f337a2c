"""Names and sizes that the fusers share with the segmentors and the checkpoint converter.

Kept free of imports, so ``models/utils/ckpt_convert.py`` can read them without importing the
fusers (which import ``models/utils``).
"""

#: The buffers a fuser feeding ``RISFusion`` exposes: the statistics (0..1 scale) of the
#: normalisation of its VIS and IR inputs, the fused output being normalised with the VIS
#: ones. The published ``UNetFuser`` names, so they travel in official checkpoints.
NORM_STATS = ('mean_vis', 'std_vis', 'mean_ir', 'std_ir')

#: Levels of RIS-FUSION's UNet (H, H/2, H/4, H/8), in ``UNetFuser`` and official checkpoints.
NUM_LEVELS = 4
