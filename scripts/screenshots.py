"""Render every screen of the app to an SVG in screenshots/, from a real (small) study's database.

    python scripts/screenshots.py [--db shots.db] [--out screenshots]

Runs the small offline study below into the database first unless it is there already (under a minute
on a 2-core CPU), then opens the app at 120x36 on each screen with `app.save_screenshot()`. Nothing is drawn by
hand: what you see is what the app shows for that database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

# Run as a file (`python scripts/screenshots.py`), sys.path[0] is scripts/: put the repo root first so the tiny
# study's builder in tests/ (and this checkout's rttui) are the ones imported.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.studies import tiny_study

STUDY = tiny_study(
    study={
        "name": "screenshots",
        "description": "two strategies, two seeds, FGSM and PGD on the offline digits task",
        "seeds": [0, 1],
    },
    train={"epochs": 2},
    eval={"epsilons": [0.01, 0.03, 0.05]},
)

SIZE = (120, 36)


async def shoot(db: Path, studies: Path, out: Path) -> list[Path]:
    from rttui.tui import make_app

    written: list[Path] = []
    study_file = studies / "screenshots.toml"
    # (file name, mode, keys to press after the screen is ready)
    shots = [
        ("studies", "studies", []),
        ("builder", "builder", []),
        ("monitor", "monitor", []),
        ("results", "results", []),
        ("ttest", "ttest", []),
        ("plots", "plots", []),
        ("plots-tradeoff", "plots", ["k"]),
        ("export", "export", []),
        ("help", "studies", ["question_mark"]),
    ]
    for name, mode, keys in shots:
        app = make_app(db=db, studies_dir=studies, poll_interval=0.1)
        if mode not in app.MODES:
            continue
        async with app.run_test(size=SIZE) as pilot:
            app.open_study("screenshots", str(study_file))
            app.action_mode(mode)
            await _settle(pilot)
            for k in keys:
                await pilot.press(k)
            await _settle(pilot)
            path = out / f"{name}.svg"
            app.save_screenshot(path.name, str(out))
            written.append(path)
            print(f"wrote {path}")
    return written


async def _settle(pilot, seconds: float = 1.5) -> None:
    """Let the workers read the database and the screen redraw."""
    for _ in range(int(seconds / 0.1)):
        await pilot.pause(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, default=Path("screenshots") / "screenshots.db")
    ap.add_argument("--out", type=Path, default=Path("screenshots"))
    args = ap.parse_args()
    from rttui import api

    args.out.mkdir(parents=True, exist_ok=True)
    studies = args.out / "studies"
    studies.mkdir(exist_ok=True)
    (studies / "screenshots.toml").write_text(STUDY)
    study = api.load_study(studies / "screenshots.toml")
    # Runs what is not in the database yet (nothing, the second time).
    print(f"running the study into {args.db} (if needed: under a minute on a 2-core CPU) ...")
    api.run_study(study, args.db)
    asyncio.run(shoot(args.db, studies, args.out))


if __name__ == "__main__":
    main()
