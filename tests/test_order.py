"""
Tests for order.py: AR-ness (local and global) on decoding orders worked out by hand, and the order
picture (each character under the tenth of the decoding that committed it).

Run: .venv/bin/python -m pytest tests/test_order.py
"""

import pytest

from order import global_ar_ness, local_ar_ness, order_text


# -----------------------------------------------------------------------------
# AR-ness, on orders worked out by hand (the prompt counts as decoded in order before step 1)

@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_ar_ness_left_to_right_is_one(k):
    assert local_ar_ness(range(8), k) == 1.0
    assert global_ar_ness(list(range(8)), k) == 1.0


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_ar_ness_right_to_left(k):
    order = list(range(7, -1, -1))
    assert local_ar_ness(order, k) == 0.0  # no token ever follows its left neighbour
    assert global_ar_ness(order, k) == k / 8  # only the last k steps take one of the k leftmost masks


def test_ar_ness_two_branches():
    # branch B (positions 4-7) written left to right, then branch A (0-3): every token but the
    # branch starts extends a run; only branch A takes the leftmost masks
    order = [4, 5, 6, 7, 0, 1, 2, 3]
    assert local_ar_ness(order, 1) == 6 / 8
    assert local_ar_ness(order, 2) == 4 / 8  # 5 and 1 only extend a run of one
    assert global_ar_ness(order, 1) == 4 / 8
    assert global_ar_ness(order, 5) == 1.0  # each step takes one of the 5 leftmost masks
    # the two branches interleaved: only the first token extends the prompt; 0,1,2,3 and the final 7 are leftmost
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    assert local_ar_ness(order, 1) == 1 / 8
    assert global_ar_ness(order, 1) == 5 / 8
    assert global_ar_ness(order, 2) == 6 / 8  # + position 6 when only {3, 6, 7} are left
    # the prompt convention: a first step that skips position 0 breaks both
    assert local_ar_ness([1, 0, 2, 3], 1) == 1 / 4 and global_ar_ness([1, 0, 2, 3], 1) == 3 / 4
    with pytest.raises(ValueError):
        local_ar_ness([0, 2], 1)



def test_order_text_puts_the_tenth_of_the_decoding_under_each_character():
    class Tok:
        pieces = {0: b"def", 1: b" f", 2: b"():\n", 3: b"   ", 4: b" return", 5: b" 1", 6: b"\n"}

        def token_bytes(self, i):
            return self.pieces[i]
    # committed at steps 0..5 of 7 -> tenths 0, 1, 2, 4, 5, 7 (10 * step // 7)
    assert order_text(Tok(), list(range(7)), list(range(7)), 7) == (
        "def f():\n"
        "00011222\n"
        "    return 1\n"
        "444555555577")

