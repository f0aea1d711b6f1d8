"""store/combine.py: calls from several threads at once run as one group, each caller gets its own result."""

import threading
import time

import pytest

from routecli.store.combine import Combiner, combined


def test_calls_waiting_while_a_group_runs_go_together_into_the_next_one_in_order():
    groups = []
    first_running = threading.Event()

    def run_group(asks):
        groups.append(list(asks))
        if len(groups) == 1:  # the first group holds the turn while the others queue up
            first_running.set()
            time.sleep(0.2)
        return [ask * 10 for ask in asks]

    combiner = Combiner()
    results = {}

    def call(n):
        results[n] = combiner(n, run_group)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    first_running.wait(5)
    others = [threading.Thread(target=call, args=(n,)) for n in range(1, 6)]
    for thread in others:
        thread.start()
        time.sleep(0.01)  # a known arrival order
    for thread in [first, *others]:
        thread.join(5)
    assert groups == [[0], [1, 2, 3, 4, 5]]
    assert results == {n: n * 10 for n in range(6)}


def test_a_failing_group_fails_every_call_in_it_and_the_next_group_runs():
    combiner = Combiner()

    def broken(asks):
        raise RuntimeError("the transaction failed")

    with pytest.raises(RuntimeError, match="the transaction failed"):
        combiner(1, broken)
    assert combiner(2, lambda asks: [a + 1 for a in asks]) == 3


def test_each_owner_and_group_function_has_its_own_combiner():
    class Owner:
        pass

    seen = []

    def run_group(owner, asks):
        seen.append((owner, list(asks)))
        return asks

    one, two = Owner(), Owner()
    assert combined(one, run_group, "a") == "a" and combined(two, run_group, "b") == "b"
    assert seen == [(one, ["a"]), (two, ["b"])]
