-- Every accepted code and every failure updates its token's row. None of those columns is
-- indexed, so PostgreSQL can write the new version on the same page without touching an
-- index (a HOT update) -- if the page has room. Pages filled to 90 % leave that room from the
-- first update on (an import fills them to the brim otherwise, and each first update of a
-- row then writes a new index entry in every index of the table). Applies to pages written
-- from now on; `VACUUM FULL tokens` rewrites an existing table with it.
ALTER TABLE tokens SET (fillfactor = 90);
