"""A short soak: a few cycles against the hostile sandbox, one sync process killed mid-delivery, and
Optiply's final state compared with the seller's ground truth (`make soak` runs the long one)."""

import pytest

from amazon_optiply import soak

pytestmark = pytest.mark.slow


def test_short_hostile_soak_with_a_kill_loses_and_duplicates_nothing(fast_tmp_path, capsys):
    # 429s without a body carry no rate header, so the client waits by Amazon's documented rate (a
    # minute for createReport); the long soak keeps them, the short one leaves them out to stay short.
    status = soak.main(
        [
            "--cycles=2",
            "--kills=1",
            "--skus=150",
            "--faults=hostile,throttle_no_body=0",
            f"--workdir={fast_tmp_path}",
            "--quiet",
        ]
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(part.split("=") for part in line.split())
    assert int(fields["kills"]) >= 1 and int(fields["faults"]) > 20, line
    assert int(fields["orders"]) > 100 and int(fields["products"]) > 100, line
    assert (fields["orders_lost"], fields["orders_duplicated"], fields["orders_unexpected"]) == (
        "0",
        "0",
        "0",
    ), line
    assert fields["products_wrong"] == "0", line
    assert status == 0, line
