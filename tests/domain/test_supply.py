from domain.supply import DEFAULT_STATUS_TRANSFORMS, ContractAction


def test_default_status_transforms_are_the_documented_ones():
    by_action: dict[ContractAction, set[str]] = {}
    for word, action in DEFAULT_STATUS_TRANSFORMS.items():
        by_action.setdefault(action, set()).add(word)
    assert by_action == {
        ContractAction.ACTIVE: {"CONFIRMED", "OK", "ACTIVE"},
        ContractAction.STOP_SELL: {"STOP", "STOP_SALE"},
        ContractAction.CANCELLED: {"CXL", "CANCELLED"},
    }
