"""Named seed streams: the stream always comes first, so purposes never collide."""

import numpy as np
import pytest

from fl_har.seeding import Stream, derive_seed, stream_rng


def test_streams_are_unique_and_come_first():
    assert len({int(s) for s in Stream}) == len(Stream)
    # the collision named streams remove: a client's seed for subject 4 vs the attacker's stream
    client = derive_seed(0, Stream.CLIENT_UPDATE, 4, 2)
    attacker = derive_seed(0, Stream.ATTACK, 2)
    assert client != attacker
    assert derive_seed(0, Stream.SHUFFLE, 1, 2) != derive_seed(0, Stream.BALANCED, 1, 2)


def test_derivation_is_a_pure_function_of_its_keys():
    assert derive_seed(7, Stream.NOISE, 3) == derive_seed(7, Stream.NOISE, 3)
    assert derive_seed(7, Stream.NOISE, 3) != derive_seed(8, Stream.NOISE, 3)
    assert 0 <= derive_seed(7, Stream.NOISE, 3) < 2**63
    a, b = stream_rng(1, Stream.COHORT, 5), stream_rng(1, Stream.COHORT, 5)
    np.testing.assert_array_equal(a.integers(0, 100, 10), b.integers(0, 100, 10))


def test_a_stream_must_be_named():
    with pytest.raises(TypeError, match="Stream"):
        derive_seed(0, 4, 2)
    with pytest.raises(ValueError, match="seed"):
        derive_seed(-1, Stream.NOISE)
