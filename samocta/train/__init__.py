"""Fine-tuning: one fold (AdamW, warm-up, AMP, validation, checkpoints, resume), the training dataset and its
augmentation, the losses, click sessions for training, the ``train`` command, torchrun, the tiny SAM's
pretraining and the speed bench.
"""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "fold": ("train_fold", "FoldResult"),
    "samocta.config": ("TrainConfig", "TrainingError"),
    "samocta.core.runs": ("read_history",),
    "dataset": ("SegmentationDataset", "collate_batch"),
    "losses": ("loss_for_task", "dice_loss", "soft_cldice_loss"),
    "sessions": ("training_sessions",),
    "pretrain": ("PretrainConfig",),
})
