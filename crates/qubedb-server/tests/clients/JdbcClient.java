// JDBC (Debian's libpostgresql-jdbc-java) against `qubedb serve`: connect, DDL, prepared statements with
// parameters of several types (server-side prepared after the driver's threshold), a transaction rolled
// back, an error's SQLSTATE, and DatabaseMetaData (tables, columns, primary keys, imported keys).
// Run by the server tests as `java -cp postgresql.jar JdbcClient.java PORT`; prints `ok` when all hold.

import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class JdbcClient {
    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/qubedb?user=qubedb&prepareThreshold=2";
        try (Connection connection = DriverManager.getConnection(url)) {
            try (Statement statement = connection.createStatement()) {
                statement.execute("CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
                statement.execute(
                    "CREATE TABLE players (id BIGINT PRIMARY KEY, team_id INTEGER REFERENCES teams(id), "
                        + "name VARCHAR(40), score NUMERIC(6,2), active BOOLEAN, joined DATE)");
                statement.execute("INSERT INTO teams VALUES (1, 'red'), (2, 'blue')");
            }
            try (PreparedStatement insert = connection.prepareStatement(
                    "INSERT INTO players VALUES (?, ?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 5; i++) {
                    insert.setLong(1, i);
                    insert.setInt(2, i % 2 + 1);
                    insert.setString(3, "player " + i);
                    insert.setBigDecimal(4, new BigDecimal(i + ".25"));
                    insert.setBoolean(5, i % 2 == 0);
                    insert.setDate(6, java.sql.Date.valueOf("2024-01-0" + i));
                    check(insert.executeUpdate() == 1, "one row inserted");
                }
            }
            try (PreparedStatement query = connection.prepareStatement(
                    "SELECT p.name, t.name, p.score, p.joined FROM players p JOIN teams t ON t.id = p.team_id "
                        + "WHERE p.score > ? AND p.active = ? ORDER BY p.id")) {
                for (int round = 0; round < 3; round++) {
                    query.setBigDecimal(1, new BigDecimal("1"));
                    query.setBoolean(2, true);
                    List<String> seen = new ArrayList<>();
                    try (ResultSet rows = query.executeQuery()) {
                        while (rows.next()) {
                            seen.add(rows.getString(1) + "/" + rows.getString(2) + "/"
                                + rows.getBigDecimal(3) + "/" + rows.getDate(4));
                        }
                    }
                    check(seen.equals(List.of("player 2/red/2.25/2024-01-02", "player 4/red/4.25/2024-01-04")),
                        "query rows: " + seen);
                }
            }
            connection.setAutoCommit(false);
            try (Statement statement = connection.createStatement()) {
                statement.executeUpdate("DELETE FROM players");
                connection.rollback();
                try (ResultSet rows = statement.executeQuery("SELECT count(*) FROM players")) {
                    rows.next();
                    check(rows.getLong(1) == 5, "rollback kept the rows");
                }
            }
            connection.setAutoCommit(true);
            try (Statement statement = connection.createStatement()) {
                statement.executeUpdate("INSERT INTO teams VALUES (1, 'again')");
                check(false, "duplicate key accepted");
            } catch (SQLException error) {
                check("23505".equals(error.getSQLState()), "SQLSTATE " + error.getSQLState());
            }
            DatabaseMetaData metadata = connection.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rows = metadata.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rows.next()) {
                    tables.add(rows.getString("TABLE_NAME"));
                }
            }
            check(tables.equals(List.of("players", "teams")), "tables: " + tables);
            List<String> columns = new ArrayList<>();
            try (ResultSet rows = metadata.getColumns(null, "public", "players", "%")) {
                while (rows.next()) {
                    columns.add(rows.getString("COLUMN_NAME") + ":" + rows.getString("TYPE_NAME"));
                }
            }
            check(columns.equals(List.of("id:int8", "team_id:int4", "name:varchar", "score:numeric",
                "active:bool", "joined:date")), "columns: " + columns);
            try (ResultSet rows = metadata.getPrimaryKeys(null, "public", "players")) {
                check(rows.next() && rows.getString("COLUMN_NAME").equals("id"), "primary key");
            }
            try (ResultSet rows = metadata.getImportedKeys(null, "public", "players")) {
                check(rows.next() && rows.getString("PKTABLE_NAME").equals("teams")
                    && rows.getString("FKCOLUMN_NAME").equals("team_id"), "imported key");
            }
        }
        System.out.println("ok");
    }
}
