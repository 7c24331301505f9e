import pytest

from conduit.auth.passwords import DECOY_HASH, _hasher

pytestmark = pytest.mark.one_pass


def test_the_decoy_hash_costs_what_a_real_one_does() -> None:
    """A sign-in for an unknown email verifies against the decoy: it must have the hasher's
    own parameters, or an attacker could tell unknown emails by the time they take."""
    assert not _hasher.check_needs_rehash(DECOY_HASH)
