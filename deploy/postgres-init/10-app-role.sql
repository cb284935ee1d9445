-- The role gmail-sync (migrate and the workers) connects as: not a superuser, no CREATEDB,
-- CREATEROLE, REPLICATION or BYPASSRLS; owner of the database and its public schema, so migrations
-- can create and alter tables there. A parser exploit or SQL injection that reaches the
-- database then reaches this database's tables only: no COPY ... PROGRAM, no server files, no
-- other databases' roles.
--
-- The postgres image runs it once, as the superuser, when it initialises an empty data directory
-- (compose mounts deploy/postgres-init at /docker-entrypoint-initdb.d). It may be rerun by hand on
-- an existing volume (README "Security"): it creates or updates the role and hands it the tables
-- that exist already.
--
-- APP_DB_USER names the role (default gmail_sync); APP_DB_PASSWORD_FILE is the file holding its
-- password (a compose secret), read by psql itself: the password is on no command line and in no
-- environment. Needs psql 15 or later (\getenv); the server may be older.
\set ON_ERROR_STOP on
\getenv app_user APP_DB_USER
\if :{?app_user}
\else
  \set app_user gmail_sync
\endif
\set app_password `cat "$APP_DB_PASSWORD_FILE"`
SELECT :'app_password' = '' AS no_password, current_database() AS app_db \gset
\if :no_password
  DO $$ BEGIN RAISE EXCEPTION 'APP_DB_PASSWORD_FILE is unset, unreadable or empty'; END $$;
\endif

SELECT format('CREATE ROLE %I', :'app_user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
-- Tables, views and free-standing sequences made before the role existed (a volume migrated as the
-- superuser); identity sequences follow their table.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'app_user')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public'
   AND (c.relkind IN ('r', 'p', 'v', 'm')
        OR (c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))) \gexec
