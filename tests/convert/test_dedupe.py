"""The duplicate finder's first pass: every repeated key becomes a suspect, within a batch and across batches."""

from programs_bridge.convert.dedupe import DuplicateFinder


def keys(start: int, stop: int) -> list[tuple[str, ...]]:
    return [(f"{n:06d}", "144", "08/15/2025", "101") for n in range(start, stop)]


def test_a_key_repeated_in_a_later_batch_is_a_suspect() -> None:
    finder = DuplicateFinder()
    finder.add(keys(0, 256), list(range(2, 258)))
    finder.add(keys(255, 300), list(range(258, 303)))  # key 255 again
    assert finder.is_suspect(keys(255, 256)[0])
    finder.close()


def test_a_key_repeated_within_one_batch_is_a_suspect() -> None:
    finder = DuplicateFinder()
    batch = [*keys(0, 10), keys(3, 4)[0]]
    finder.add(batch, list(range(2, 13)))
    assert finder.is_suspect(keys(3, 4)[0])
    finder.close()


def test_distinct_keys_leave_few_suspects() -> None:
    finder = DuplicateFinder()
    for start in range(0, 20_000, 256):
        batch = keys(start, min(start + 256, 20_000))
        finder.add(batch, list(range(len(batch))))
    assert finder.repeats < 100  # false suspects only: about n^2 / 2^28 of them
    finder.close()
