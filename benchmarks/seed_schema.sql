-- The seed's approach, rebuilt for a fair comparison on the same PostgreSQL (benchmark only).
--
-- Load layer: one row per arriving image, the bytes in the database (bytea). An AFTER INSERT
-- trigger moves every arrival into the integration layer (city dimension, fact row), row by
-- row. The data mart is rebuilt wholesale (DROP + CREATE TABLE AS SELECT over everything).
-- Names are fixed here; the benchmark never builds SQL from data.

DROP TABLE IF EXISTS seed_mart_training CASCADE;
DROP TABLE IF EXISTS seed_fact_sights CASCADE;
DROP TABLE IF EXISTS seed_load_images CASCADE;
DROP TABLE IF EXISTS seed_dim_city CASCADE;

CREATE TABLE seed_dim_city (
    id serial PRIMARY KEY,
    name varchar(100) UNIQUE NOT NULL
);

CREATE TABLE seed_load_images (
    id bigserial PRIMARY KEY,
    city varchar(100) NOT NULL,
    sight varchar(200),
    image bytea NOT NULL,
    image_hash char(64) UNIQUE NOT NULL,
    source_url varchar(2000) UNIQUE,
    labels jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seed_fact_sights (
    image_id bigint PRIMARY KEY REFERENCES seed_load_images (id),
    city_id integer NOT NULL REFERENCES seed_dim_city (id),
    sight varchar(200),
    labels jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_seed_fact_sights_city ON seed_fact_sights (city_id);

CREATE OR REPLACE FUNCTION seed_on_image_insert() RETURNS trigger AS $$
DECLARE
    v_city_id integer;
BEGIN
    INSERT INTO seed_dim_city (name) VALUES (NEW.city) ON CONFLICT (name) DO NOTHING;
    SELECT id INTO v_city_id FROM seed_dim_city WHERE name = NEW.city;
    INSERT INTO seed_fact_sights (image_id, city_id, sight, labels, created_at)
    VALUES (NEW.id, v_city_id, NEW.sight, NEW.labels, NEW.created_at);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER seed_image_inserted
AFTER INSERT ON seed_load_images
FOR EACH ROW EXECUTE FUNCTION seed_on_image_insert();

-- The wholesale mart rebuild, run as one statement list by the benchmark (--seed):
--   DROP TABLE IF EXISTS seed_mart_training;
--   CREATE TABLE seed_mart_training AS
--     SELECT f.image_id, c.name AS city, f.sight, l.image, f.labels,
--            jsonb_array_length(f.labels) > 0 AS labelled, f.created_at
--     FROM seed_fact_sights f
--     JOIN seed_dim_city c ON c.id = f.city_id
--     JOIN seed_load_images l ON l.id = f.image_id;
--   CREATE INDEX ON seed_mart_training (city);
