"""Which event types are kept, and the same choice as an Okta filter."""

import pytest

from transforms.selection import EventTypeSelection


def test_default_prefix_keeps_today_and_future_personal_types():
    keep = EventTypeSelection.parse("personal.*")
    assert keep("personal.admin.configuration.update")
    assert keep("personal.user.app_migration.export")
    assert keep("personal.some.future.type")
    assert not keep("user.session.start")
    assert not keep("personalx.y")
    assert keep.scim_filter() == 'eventType sw "personal."'


def test_exact_types_and_prefixes_mix():
    keep = EventTypeSelection.parse("personal.user.app_migration.export, user.session.*")
    assert keep("personal.user.app_migration.export")
    assert not keep("personal.admin.configuration.update")
    assert keep("user.session.start")
    assert keep.scim_filter() == 'eventType sw "user.session." or eventType eq "personal.user.app_migration.export"'


def test_star_alone_keeps_everything_and_filters_nothing():
    keep = EventTypeSelection.parse("*")
    assert keep("anything.at.all")
    assert keep.scim_filter() == ""


@pytest.mark.parametrize("spec", ["", " , ", 'personal." or 1', "per*sonal", "a b"])
def test_bad_selections_are_refused(spec):
    with pytest.raises(ValueError, match="--event_types"):
        EventTypeSelection.parse(spec)
