"""Host-side training: corpora, splits, augmentation, models, fitting, evaluation."""
