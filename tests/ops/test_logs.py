"""JSON log lines from a real server process, parsed: request id (also in the response
header), tenant, key id, operation; never a credential or a link token."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from prefcenter.models import ApiKey
from tests.stream.conftest import ServerProcess, open_world


async def test_json_lines_carry_the_request_context(tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(database_url=database_url, folder=tmp_path, env={
        "PREFCENTER_LOG_FORMAT": "json", "PREFCENTER_LOG_LEVEL": "INFO"}).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            world = await open_world(server, client)
            key = world.keys["owner"]
            key_id = str((await ApiKey.get(prefix=key.split("_")[1])).id)
            kept = await client.post("/graphql", json={"query": "query Who { scopes { id } }"},
                                     headers={"authorization": f"Bearer {key}",
                                              "x-request-id": "req-42.a:b"})
            assert kept.headers["x-request-id"] == "req-42.a:b"
            fresh = await client.post("/graphql", json={"query": "{ __typename }"},
                                      headers={"x-request-id": "not sane!" + "x" * 200})
            new_id = fresh.headers["x-request-id"]
            assert new_id != "not sane!" and len(new_id) == 32
            await client.get("/u/secret-link-token-abc")
    finally:
        server.stop()
        from prefcenter import db

        await db.close_db()
    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text[-2000:]
    access = {line["request_id"]: line for line in lines if line["logger"] == "prefcenter.access"}
    who = access["req-42.a:b"]
    assert who["tenant_id"] == world.tenant_id
    assert who["key_id"] == key_id
    assert who["operation"] == "Who" and who["operation_type"] == "query"
    assert who["status"] == 200 and who["route"] == "/graphql" and who["level"] == "INFO"
    assert access[new_id]["route"] == "/graphql" and "tenant_id" not in access[new_id]
    assert any(line["route"] == "/u/{token}" for line in access.values())
    assert key not in text and key.split("_", 2)[2] not in text  # the secret may hold "_"
    assert "secret-link-token-abc" not in text
