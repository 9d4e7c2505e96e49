"""Attacks, all in [0, 1] pixel space on eval-mode models (base.py holds the contract), in one room:

- torch-free facts, read by study validation and `rttui --help` without importing torch: `names` (every attack
  rttui implements and its facts), `ta_catalogue` (the torchattacks classes offered as `ta:` names) and
  `audit_settings` (the attack-strength audit's `[eval.audit]` keys);
- the attacks themselves (`fgsm`, `pgd`, `deepfool`, `autoattack`, `transfer`, `ta`) and the audit (`audit`);
- the sweep drivers that run an attack over an epsilon grid (`sweep`, `transfer`, `ta`), registered by name in
  `registry.REGISTRY`, which `registry.load_drivers()` (called by `get_attack`) fills on first use.

So this package imports nothing itself: importing one torch-free module never pays for torch. Import what you
need from its module (`from rttui.engine.attacks.pgd import pgd`).
"""
