"""The raw data of the story: two regional customer exports and two held-out sets, all made-up.

Deterministic (seeded), so every run of the demo records the same digests.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

COLUMNS = ["customer_id", "age", "tenure_months", "monthly_spend", "plan", "support_calls", "churned"]


def _customers(prefix: str, count: int, seed: int, incomplete_every: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        age, tenure = rng.randint(18, 80), rng.randint(1, 72)
        spend, calls = round(rng.uniform(10, 120), 2), rng.randint(0, 9)
        plan = rng.choice(["basic", "basic", "premium"])
        # Churn is likelier for short tenure, many support calls and high spend: learnable, noisy.
        score = -1.2 - tenure / 24 + calls / 3 + spend / 80 - (plan == "premium") * 0.5
        churned = int(rng.random() < 1 / (1 + math.exp(-score)))
        row = {
            "customer_id": f"{prefix}-{i:04d}",
            "age": str(age),
            "tenure_months": str(tenure),
            "monthly_spend": f"{spend:.2f}",
            "plan": plan,
            "support_calls": str(calls),
            "churned": str(churned),
        }
        if incomplete_every and i % incomplete_every == 7:
            row["monthly_spend"] = ""  # the application export has gaps: cleaning drops them
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_raw(root: Path) -> dict[str, Path]:
    """raw/customers_{eu,us}.csv (the exports Airflow ingests) and holdout/*.csv (for Prefect)."""
    return {
        "raw_eu": write_csv(root / "raw" / "customers_eu.csv", _customers("eu", 400, seed=1, incomplete_every=25)),
        "raw_us": write_csv(root / "raw" / "customers_us.csv", _customers("us", 400, seed=2, incomplete_every=25)),
        "holdout_recent": write_csv(root / "holdout" / "recent_signups.csv", _customers("h1", 200, seed=3)),
        "holdout_partner": write_csv(root / "holdout" / "partner_accounts.csv", _customers("h2", 200, seed=4)),
    }


def take_down(export: Path, customer_ids: set[str]) -> int:
    """A privacy takedown: delete the customers' rows from the raw export. Returns rows deleted."""
    with open(export, newline="") as src:
        rows = list(csv.DictReader(src))
    kept = [r for r in rows if r["customer_id"] not in customer_ids]
    write_csv(export, kept)
    return len(rows) - len(kept)
