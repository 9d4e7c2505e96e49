"""Pure torch/timm: data, models, strategies, attacks, training and evaluation. Imports no other rttui layer."""
