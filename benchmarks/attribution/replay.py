"""CPU seconds of fct_attribution's nightly statements, replayed in one DuckDB process (threads 2,
memory_limit 4GB) on fresh copies of the warehouse as the night left it just before the model:
before = the table rebuild (create as select, swap), after = the incremental batch
(temp table of the compiled incremental select, delete+insert on order_id, post-hook), each
followed by a CHECKPOINT (DuckDB writes and vacuums there)."""
import json, resource, shutil, sys, time
from pathlib import Path
import duckdb

B = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/attr-bench")
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(variant):
    sql = (B / variant / "fct_attribution.compiled.sql").read_text()
    out = []
    for i in range(REPS):
        db = B / variant / "replay" / "m.duckdb"; db.parent.mkdir(exist_ok=True)
        shutil.copy(B / variant / "night.duckdb", db)
        con = duckdb.connect(str(db), config={"threads": 2, "memory_limit": "4GB"})
        c0, w0 = cpu(), time.perf_counter()
        if variant == "before":
            con.execute(f"create table marts.fct_attribution__new as {sql}")
            con.execute("drop table marts.fct_attribution")
            con.execute("alter table marts.fct_attribution__new rename to fct_attribution")
            info = {"rows_written": con.execute("select count(*) from marts.fct_attribution").fetchone()[0]}
        else:
            con.execute(f"create temp table batch as {sql}")
            cols = ", ".join(r[0] for r in con.execute("select column_name from information_schema.columns "
                             "where table_schema = 'marts' and table_name = 'fct_attribution' order by ordinal_position").fetchall())
            deleted = con.execute("delete from marts.fct_attribution where order_id in (select order_id from batch)").fetchone()[0]
            con.execute(f"insert into marts.fct_attribution ({cols}) select {cols} from batch")
            dropped = con.execute("delete from marts.fct_attribution where order_id not in (select order_id from staging.stg_orders "
                                  "where not is_cancelled and order_id is not null)").fetchone()[0]
            info = {"rows_written": con.execute("select count(*) from batch").fetchone()[0],
                    "orders_recomputed": con.execute("select count(distinct order_id) from batch").fetchone()[0],
                    "rows_deleted": deleted + dropped}
        con.execute("checkpoint")
        c1, w1 = cpu(), time.perf_counter()
        info.update(cpu_s=round(c1 - c0, 3), wall_s=round(w1 - w0, 3),
                    table_rows=con.execute("select count(*) from marts.fct_attribution").fetchone()[0],
                    orders=con.execute("select count(distinct order_id) from marts.fct_attribution").fetchone()[0])
        con.close()
        db.unlink()
        out.append(info)
    return out


for v in ["before", "after"]:
    print(v, json.dumps(run(v)))
