"""Model code shared by training and serving: base-model provisioning, encoders, runtimes."""
