"""psycopg 3 against `qubedb serve`: every type round-trips as a parameter and a result, in text and in
binary; server-side prepared statements; COPY both ways; transactions; errors raised as the class their
SQLSTATE names. Run by the server tests with the port as the argument; prints `ok` when all hold."""

import datetime
import decimal
import struct
import sys
import uuid

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

port = int(sys.argv[1])
conninfo = f"host=127.0.0.1 port={port} user=qubedb dbname=qubedb"

COLUMNS = (
    "id INTEGER PRIMARY KEY, small SMALLINT, big BIGINT, single REAL, double DOUBLE PRECISION, "
    "amount NUMERIC(10,2), body TEXT, name VARCHAR(10), flag BOOLEAN, data BYTEA, day DATE, "
    "at TIMESTAMP, at_zone TIMESTAMPTZ, clock TIME, id2 UUID, doc JSONB"
)
VALUES = (
    1,
    -7,
    3 << 40,
    1.5,
    -2.25e-10,
    decimal.Decimal("12.50"),
    "tëxt with 'quotes'",
    "short",
    True,
    b"\x00\x01\xff",
    datetime.date(2024, 2, 29),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 678901),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    datetime.time(23, 59, 59, 999999),
    uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    {"a": [1, 2.5, "x"], "b": None},
)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


with psycopg.connect(conninfo, autocommit=True) as conn:
    check(conn.info.server_version >= 160000, f"server_version {conn.info.server_version}")
    conn.execute(f"CREATE TABLE everything ({COLUMNS})")
    placeholders = ", ".join(["%s"] * len(VALUES))
    for binary in (False, True):
        conn.execute("DELETE FROM everything")
        with conn.cursor(binary=binary) as cursor:
            parameters = list(VALUES)
            parameters[-1] = Jsonb(VALUES[-1])
            cursor.execute(f"INSERT INTO everything VALUES ({placeholders})", parameters)
            cursor.execute(
                f"INSERT INTO everything VALUES ({placeholders})",
                [2] + [None] * (len(VALUES) - 1),
            )
            cursor.execute("SELECT * FROM everything WHERE id = %s", (1,))
            row = cursor.fetchone()
            check(row == VALUES, f"binary={binary}: {row!r} != {VALUES!r}")
            cursor.execute("SELECT * FROM everything WHERE id = %s", (2,))
            row = cursor.fetchone()
            check(row == (2,) + (None,) * (len(VALUES) - 1), f"binary={binary}: {row!r}")
            # Parameters typed by the columns they meet.
            cursor.execute(
                "SELECT id FROM everything WHERE day = %s AND at_zone = %s AND id2 = %s "
                "AND amount = %s AND name LIKE %s",
                (VALUES[10], VALUES[12], VALUES[14], VALUES[5], "sh%"),
            )
            check(cursor.fetchall() == [(1,)], f"binary={binary}: typed comparisons")

    # Vectors (pgvector's type): the text form, and pgvector's binary form (dimensions, an unused
    # u16, the float4s); the type's OID is the one pg_type lists.
    conn.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, v vector(3))")
    conn.execute("CREATE INDEX ON embeddings USING hnsw (v vector_l2_ops)")
    conn.execute("INSERT INTO embeddings VALUES (1, %s), (2, %s)", ("[1,2,3]", "[0,0,1]"))
    row = conn.execute(
        "SELECT id, v FROM embeddings ORDER BY v <-> %s LIMIT 1", ("[0,0,0.9]",)
    ).fetchone()
    check(row == (2, "[0,0,1]"), f"nearest vector: {row!r}")
    vector_oid = conn.execute("SELECT oid FROM pg_type WHERE typname = 'vector'").fetchone()[0]
    with conn.cursor(binary=True) as cursor:
        cursor.execute("SELECT v FROM embeddings WHERE id = 1")
        raw = bytes(cursor.fetchone()[0])
        check(raw == struct.pack(">HHfff", 3, 0, 1.0, 2.0, 3.0), f"binary vector: {raw!r}")
        check(cursor.description[0].type_code == vector_oid, f"vector oid {vector_oid}")

    # halfvec: its binary form holds halves (struct's "e").
    conn.execute("CREATE TABLE halves (id INTEGER PRIMARY KEY, v halfvec(3))")
    conn.execute("CREATE INDEX ON halves USING hnsw (v halfvec_l2_ops)")
    conn.execute("INSERT INTO halves VALUES (1, %s), (2, %s)", ("[1.5,2,3]", "[0,0,1.0001]"))
    row = conn.execute("SELECT id, v FROM halves ORDER BY v <-> %s LIMIT 1", ("[0,0,0.9]",)).fetchone()
    check(row == (2, "[0,0,1]"), f"nearest halfvec: {row!r}")
    halfvec_oid = conn.execute("SELECT oid FROM pg_type WHERE typname = 'halfvec'").fetchone()[0]
    with conn.cursor(binary=True) as cursor:
        cursor.execute("SELECT v FROM halves WHERE id = 1")
        raw = bytes(cursor.fetchone()[0])
        check(raw == struct.pack(">HHeee", 3, 0, 1.5, 2.0, 3.0), f"binary halfvec: {raw!r}")
        check(cursor.description[0].type_code == halfvec_oid, f"halfvec oid {halfvec_oid}")

    # sparsevec: the text form (indices from 1), ordering by distance to a parameter, and pgvector's
    # binary form (dimensions, count, an unused int4, the indices from 0, the float4s).
    conn.execute("CREATE TABLE sparse (id INTEGER PRIMARY KEY, v sparsevec(5))")
    conn.execute("INSERT INTO sparse VALUES (1, %s), (2, %s)", ("{1:1,3:2}/5", "{5:-1}/5"))
    row = conn.execute(
        "SELECT id, v FROM sparse ORDER BY v <-> %s LIMIT 1", ("{5:-0.5}/5",), prepare=True
    ).fetchone()
    check(row == (2, "{5:-1}/5"), f"nearest sparsevec: {row!r}")
    sparsevec_oid = conn.execute(
        "SELECT oid FROM pg_type WHERE typname = 'sparsevec'"
    ).fetchone()[0]
    with conn.cursor(binary=True) as cursor:
        cursor.execute("SELECT v FROM sparse WHERE id = 1")
        raw = bytes(cursor.fetchone()[0])
        expected = struct.pack(">iiiiiff", 5, 2, 0, 0, 2, 1.0, 2.0)
        check(raw == expected, f"binary sparsevec: {raw!r}")
        check(cursor.description[0].type_code == sparsevec_oid, f"sparsevec oid {sparsevec_oid}")

    # bit strings: the text form, pgvector's Hamming distance to a parameter, PostgreSQL's binary
    # form (the bit count, then the bits packed, first bit highest) and the OIDs of bit and varbit.
    conn.execute("CREATE TABLE bits (id INTEGER PRIMARY KEY, b bit(10), v varbit)")
    conn.execute("INSERT INTO bits VALUES (1, %s, %s), (2, %s, NULL)",
                 ("1000000001", "101", "0111111111"))
    row = conn.execute(
        "SELECT id, b FROM bits ORDER BY b <~> %s LIMIT 1", ("1000000000",), prepare=True
    ).fetchone()
    check(row == (1, "1000000001"), f"nearest bit string: {row!r}")
    with conn.cursor(binary=True) as cursor:
        cursor.execute("SELECT b, v FROM bits WHERE id = 1")
        raw = tuple(bytes(value) for value in cursor.fetchone())
        check(raw == (struct.pack(">iBB", 10, 0x80, 0x40), struct.pack(">iB", 3, 0xA0)),
              f"binary bit strings: {raw!r}")
        check([column.type_code for column in cursor.description] == [1560, 1562],
              f"bit oids: {cursor.description!r}")

    # Server-side prepared statements: prepared once, executed many times.
    for attempt in range(5):
        row = conn.execute(
            "SELECT body FROM everything WHERE id = %s", (1,), prepare=True
        ).fetchone()
        check(row == (VALUES[6],), f"prepared run {attempt}: {row!r}")

    # COPY in both directions.
    with conn.cursor() as cursor:
        with cursor.copy("COPY everything (id, body) FROM STDIN") as copy:
            copy.write_row((10, "ten\twith tab"))
            copy.write_row((11, None))
        rows = cursor.execute(
            "SELECT id, body FROM everything WHERE id >= 10 ORDER BY id"
        ).fetchall()
        check(rows == [(10, "ten\twith tab"), (11, None)], f"copy in: {rows!r}")
        with cursor.copy(
            "COPY (SELECT id, body FROM everything WHERE id >= 10 ORDER BY id) TO STDOUT"
        ) as copy:
            rows = [tuple(row) for row in copy.rows()]
        check(rows == [("10", "ten\twith tab"), ("11", None)], f"copy out: {rows!r}")

    # COPY in PostgreSQL's binary format, both ways: every type of `everything` read out and
    # written back, and vectors sent as pgvector's binary form (what pgvector-python's bulk
    # loading writes), NULLs included.
    types = ["int4", "int2", "int8", "float4", "float8", "numeric", "text", "varchar", "bool",
             "bytea", "date", "timestamp", "timestamptz", "time", "uuid", "jsonb"]
    with conn.cursor() as cursor:
        with cursor.copy("COPY everything TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(types)
            rows = sorted(copy.rows(), key=lambda row: row[0])
        check(rows[0] == VALUES, f"binary copy out: {rows[0]!r}")
        cursor.execute(f"CREATE TABLE everything_copy ({COLUMNS})")
        with cursor.copy("COPY everything_copy FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        copied = cursor.execute("SELECT * FROM everything_copy ORDER BY id").fetchall()
        original = cursor.execute("SELECT * FROM everything ORDER BY id").fetchall()
        check(copied == original and len(copied) == len(rows), f"binary copy in: {copied!r}")
        cursor.execute("CREATE TABLE loaded (id INTEGER PRIMARY KEY, v vector(3))")
        with cursor.copy("COPY loaded (id, v) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "bytea"])
            copy.write_row((1, struct.pack(">HHfff", 3, 0, 0.5, 0.25, -1.0)))
            copy.write_row((2, None))
        rows = cursor.execute("SELECT id, v FROM loaded ORDER BY id").fetchall()
        check(rows == [(1, "[0.5,0.25,-1]"), (2, None)], f"binary vector copy: {rows!r}")
        try:
            with cursor.copy("COPY loaded (id, v) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "bytea"])
                copy.write_row((3, struct.pack(">HHff", 3, 0, 0.5, 0.25)))
        except errors.InvalidBinaryRepresentation:
            pass
        else:
            raise AssertionError("a short binary vector was accepted")

    # Errors come back as the class of their SQLSTATE; the connection carries on.
    for sql, error_class in (
        ("INSERT INTO everything (id) VALUES (1)", errors.UniqueViolation),
        ("SELECT * FROM missing", errors.UndefinedTable),
        ("SELECT 1/0", errors.DivisionByZero),
        ("SELEC 1", errors.SyntaxError),
    ):
        try:
            conn.execute(sql)
        except error_class:
            pass
        else:
            raise AssertionError(f"{sql} did not raise {error_class.__name__}")

# Transactions: a block commits or rolls back as a whole.
with psycopg.connect(conninfo) as conn:
    with conn.transaction():
        conn.execute("INSERT INTO everything (id) VALUES (20)")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO everything (id) VALUES (21)")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    ids = conn.execute("SELECT id FROM everything WHERE id >= 20 ORDER BY id").fetchall()
    check(ids == [(20,)], f"transactions: {ids!r}")
    conn.rollback()

print("ok")
