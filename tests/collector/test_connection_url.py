"""TASKPULSE_REDIS_URL read into a StoreAddress (pure code): every form, and errors that say
what is wrong."""

from __future__ import annotations

import pytest

from event_collector.config import CollectorSettings
from event_collector.connection import (
    Node,
    StoreAddress,
    StoreUrlError,
    has_hash_tag,
    parse_store_url,
    store_key_prefix,
    store_keys,
)
from event_collector.environment import SettingsError, settings_from_env


def test_a_plain_redis_url_is_one_redis_opened_as_written() -> None:
    address = parse_store_url("redis://:secret@store:6380/2")
    assert (address.mode, address.url, address.tls) == ("single", "redis://:secret@store:6380/2",
                                                        False)
    assert parse_store_url("rediss://store/0").tls
    assert parse_store_url("unix:///run/redis.sock?db=1").mode == "single"


def test_a_cluster_url_lists_its_startup_nodes() -> None:
    address = parse_store_url("redis+cluster://a:7000,b:7001,[::1]:7002,c")
    assert address.mode == "cluster"
    assert address.nodes == (Node("a", 7000), Node("b", 7001), Node("::1", 7002),
                             Node("c", 6379))
    assert (address.db, address.username, address.password) == (0, None, None)


def test_a_cluster_url_carries_credentials_tls_and_options() -> None:
    address = parse_store_url(
        "rediss+cluster://app:p%40ss@a:7000,b:7001/?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem")
    assert (address.username, address.password, address.tls) == ("app", "p@ss", True)
    assert address.options == {"ssl_cert_reqs": "none", "ssl_ca_certs": "/ca.pem"}
    assert address.safe_url == "rediss+cluster://app:***@a:7000,b:7001/?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem"


def test_a_sentinel_url_names_the_service_and_db() -> None:
    address = parse_store_url(
        "redis+sentinel://:pw@s1:26379,s2,s3:26380/mymaster/3?sentinel_password=spw")
    assert address.mode == "sentinel"
    assert address.nodes == (Node("s1", 26379), Node("s2", 26379), Node("s3", 26380))
    assert (address.service_name, address.db, address.password) == ("mymaster", 3, "pw")
    assert address.options == {"sentinel_password": "spw"}
    assert parse_store_url("redis+sentinel://s1/mymaster").db == 0


@pytest.mark.parametrize(("url", "says"), [
    ("store:6379", "is not a URL"),
    ("http://store:6379", "unknown scheme 'http://'"),
    ("redis+cluster://a:7000,,b:7001", "an entry is empty"),
    ("redis+cluster://a:70000", "port '70000'"),
    ("redis+cluster://a:port", "port 'port'"),
    ("redis+cluster://:7000", "has no host"),
    ("redis+cluster://a:7000/1", "only db 0"),
    ("redis+cluster://a:7000?db=1", "unknown option 'db'"),
    ("redis+sentinel://s1:26379", "needs the service name"),
    ("redis+sentinel://s1:26379/", "needs the service name"),
    ("redis+sentinel://s1/mymaster/x", "database 'x'"),
    ("redis+sentinel://s1/mymaster/1/2", "path is /service_name[/db]"),
    ("redis+sentinel://s1/m?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe'"),
])
def test_a_bad_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(StoreUrlError) as caught:
        parse_store_url(url)
    assert says in str(caught.value)


def test_the_default_prefix_carries_a_hash_tag_on_a_cluster_only() -> None:
    single, cluster = parse_store_url("redis://a/1"), parse_store_url("redis+cluster://a:7000")
    assert store_key_prefix(single, "") == "tp:"
    assert store_key_prefix(cluster, "") == "{tp}:"
    assert store_key_prefix(cluster, "{prod}:") == "{prod}:"
    assert store_key_prefix(single, "x:") == "x:"


def test_a_cluster_prefix_without_a_hash_tag_is_refused() -> None:
    cluster = parse_store_url("redis+cluster://a:7000")
    with pytest.raises(StoreUrlError, match="no hash tag"):
        store_key_prefix(cluster, "tp:")
    assert [has_hash_tag(p) for p in ("{}:", "tp{:", "a{b}:")] == [False, False, True]


def test_settings_name_the_variable_of_a_bad_store_url_or_prefix() -> None:
    with pytest.raises(SettingsError, match="TASKPULSE_REDIS_URL: unknown scheme"):
        settings_from_env(CollectorSettings, {"TASKPULSE_REDIS_URL": "mysql://db"})
    with pytest.raises(SettingsError, match="TASKPULSE_KEY_PREFIX: key prefix 'tp:' has no"):
        settings_from_env(CollectorSettings, {"TASKPULSE_REDIS_URL": "redis+cluster://a:7000",
                                              "TASKPULSE_KEY_PREFIX": "tp:"})


def test_every_role_builds_its_keys_from_url_and_prefix() -> None:
    settings = settings_from_env(CollectorSettings,
                                 {"TASKPULSE_REDIS_URL": "redis+cluster://a:7000"})
    assert settings.keys == store_keys("redis+cluster://a:7000", "")
    assert settings.keys.events == "{tp}:events"
    assert settings.keys.beat_prefix == "redbeat:{tp}:"  # beat's keys share the slot too


def test_an_address_is_a_plain_value() -> None:
    assert parse_store_url("redis+cluster://a:7000") == StoreAddress(
        mode="cluster", url="redis+cluster://a:7000", nodes=(Node("a", 7000),))
