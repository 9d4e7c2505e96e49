"""rttui: adversarial robustness of transfer-learned image models.

Importing the package stays cheap (no torch): the engine is imported only when a command needs it.
"""

__version__ = "0.1.0"
