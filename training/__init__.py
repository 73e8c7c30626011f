"""Data, teacher fine-tuning and export, losses, distillation and evaluation."""
