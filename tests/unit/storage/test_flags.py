"""The storage flags a tool passes through: Beam's S3 options only, misspellings refused, no value repeated."""

from __future__ import annotations

from storage.flags import split_storage_flags

SECRET = "wJalrXUtnFEMI-not-a-real-key"


def test_the_s3_options_pass_in_either_spelling():
    flags, problems = split_storage_flags(["--s3_endpoint_url", "http://127.0.0.1:9000", "--s3_disable_ssl",
                                           f"--s3_secret_access_key={SECRET}"])
    assert problems == []
    assert sorted(flags) == sorted(["--s3_endpoint_url=http://127.0.0.1:9000", "--s3_disable_ssl",
                                    f"--s3_secret_access_key={SECRET}"])


def test_nothing_given_is_nothing_to_configure():
    assert split_storage_flags([]) == ([], [])


def test_a_misspelt_flag_is_refused_with_a_suggestion_and_without_its_value():
    _, problems = split_storage_flags(["--s3_secret_key", SECRET, "--sinse=26h"], known=["--since", "--until"])
    assert problems == ["unknown option --s3_secret_key (did you mean --s3_secret_access_key?)",
                        "unknown option --sinse (did you mean --since?)"]
    assert SECRET not in " ".join(problems)


def test_other_flags_and_stray_arguments_are_refused():
    _, problems = split_storage_flags(["--runner=DataflowRunner", "lake"])
    assert problems == ["unknown option --runner", "unexpected argument 'lake'"]


def test_a_flag_without_its_value_is_refused():
    assert split_storage_flags(["--s3_endpoint_url"]) == ([], ["argument --s3_endpoint_url: expected one argument"])
