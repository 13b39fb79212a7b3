-- The hard-case database's type families: every column type family of
-- MariaDB 10.11 at its extreme values, one table per family, written by
-- hand. Run in a UTC session, not strict (real servers hold what strict
-- mode refuses), utf8mb4. `data.rs` adds the very wide table.

CREATE TABLE f_integers (
  id INT NOT NULL PRIMARY KEY,
  t TINYINT NULL, tu TINYINT UNSIGNED NULL,
  s SMALLINT NULL, su SMALLINT UNSIGNED NULL,
  m MEDIUMINT NULL, mu MEDIUMINT UNSIGNED NULL,
  i INT NULL, iu INT UNSIGNED NULL,
  b BIGINT NULL, bu BIGINT UNSIGNED NULL,
  flag BOOL NULL, z INT(8) UNSIGNED ZEROFILL NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_integers VALUES
 (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0, 0),
 (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 1, 4294967295),
 (3, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, 127, 42),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE f_decimals (
  id INT NOT NULL PRIMARY KEY,
  d65_30 DECIMAL(65,30) NULL, d65_0 DECIMAL(65,0) NULL,
  d38_10u DECIMAL(38,10) UNSIGNED NULL, d5_5 DECIMAL(5,5) NULL, d1 DECIMAL(1,0) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_decimals VALUES
 (1, '99999999999999999999999999999999999.999999999999999999999999999999',
     '99999999999999999999999999999999999999999999999999999999999999999',
     '9999999999999999999999999999.9999999999', 0.99999, 9),
 (2, '-99999999999999999999999999999999999.999999999999999999999999999999',
     '-99999999999999999999999999999999999999999999999999999999999999999',
     0, -0.99999, -9),
 (3, '0.000000000000000000000000000001', '-1', '0.0000000001', 0.00001, 0),
 (4, NULL, NULL, NULL, NULL, NULL);

-- FLOAT holds a negative zero (a double that underflows as it is stored);
-- DOUBLE columns turn -0 into 0 on every write, so they cannot.
CREATE TABLE f_floats (
  id INT NOT NULL PRIMARY KEY,
  f FLOAT NULL, d DOUBLE NULL, f7_3 FLOAT(7,3) NULL, d20_6 DOUBLE(20,6) NULL, r REAL NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_floats VALUES
 (1, 3.4028234663852886e38, 1.7976931348623157e308, 9999.999, 99999999999999.999999, -1.7976931348623157e308),
 (2, 1.1754943508222875e-38, 2.2250738585072014e-308, 0.001, 0.000001, 2.2250738585072014e-308),
 (3, 1.401298464324817e-45, 4.9406564584124654e-324, -9999.999, -99999999999999.999999, -4.9406564584124654e-324),
 (4, -1e-50, 0e0, 0, 0, -0e0),
 (5, -3.4028234663852886e38, -1.7976931348623157e308, 1234.567, 0.1, 0.30000000000000004),
 (6, 0.1, 0.1, -0.001, 123456.123456, 9007199254740993),
 (7, 16777217, 1e-320, 1.5, -1.5, 1e22),
 (8, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE f_bits (
  id INT NOT NULL PRIMARY KEY,
  b1 BIT(1) NULL, b2 BIT(2) NULL, b7 BIT(7) NULL, b8 BIT(8) NULL, b9 BIT(9) NULL,
  b13 BIT(13) NULL, b32 BIT(32) NULL, b63 BIT(63) NULL, b64 BIT(64) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_bits VALUES
 (1, b'0', b'00', b'0', b'0', b'0', b'0', b'0', b'0', b'0'),
 (2, b'1', b'11', b'1111111', b'11111111', b'111111111', b'1111111111111', 4294967295,
     9223372036854775807, 18446744073709551615),
 (3, b'1', b'10', b'1010101', b'10000000', b'100000000', b'1000000000001', 2147483648,
     4611686018427387904, 9223372036854775808),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Text: what escapes, quoting and NULL markers could confuse, trailing
-- spaces (CHAR drops them, VARCHAR keeps them), 4-byte UTF-8, and a
-- LONGTEXT larger than the destination's max_allowed_packet.
CREATE TABLE f_text (
  id INT NOT NULL PRIMARY KEY,
  c CHAR(10) NULL, c255 CHAR(255) NULL, v VARCHAR(255) NULL, tt TINYTEXT NULL,
  t TEXT NULL, mt MEDIUMTEXT NULL, lt LONGTEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO f_text VALUES
 (1, 'ab   ', '  lead', 'trail   ', '', '', '', ''),
 (2, 'NULL', '\\N', 'NULL', '\\N', '\\\\N', 'N', '\\'),
 (3, 'a\0b', 'tab\there', 'cr\rlf\nboth\r\n', 'back\\slash', 'quote \' double " back`tick', '\Z ctrl-z', 'end with backslash \\'),
 (4, '😀😀😀', '𝄞 clef 𠜎 ideograph', 'emoji 😀 ümlaut é ß ∑', '\0', '\t\n\r', ' ', ',;|'),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, REPEAT('😀 ümlaut \\ tab\t q\' ', 262144)),
 (6, '', '', ' ', '  ', NULL, REPEAT('x', 70000), NULL);

-- Every byte value, in order.
SET @all_bytes = X'000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF';

-- Bytes in single-byte and multi-byte character sets, each column's own:
-- every byte of latin1, Cyrillic, Greek, Hebrew, Central European; and
-- Shift-JIS, Big5 and GBK characters whose second byte is a backslash.
CREATE TABLE f_charsets (
  id INT NOT NULL PRIMARY KEY,
  latin1 VARCHAR(300) CHARACTER SET latin1 NULL,
  cp1251 VARCHAR(50) CHARACTER SET cp1251 NULL,
  koi8r VARCHAR(50) CHARACTER SET koi8r NULL,
  greek VARCHAR(50) CHARACTER SET greek NULL,
  hebrew VARCHAR(50) CHARACTER SET hebrew NULL,
  cp1250 VARCHAR(50) CHARACTER SET cp1250 NULL,
  ascii VARCHAR(50) CHARACTER SET ascii NULL,
  sjis VARCHAR(50) CHARACTER SET sjis NULL,
  big5 VARCHAR(50) CHARACTER SET big5 NULL,
  gbk VARCHAR(50) CHARACTER SET gbk NULL,
  ucs2 VARCHAR(50) CHARACTER SET ucs2 NULL,
  utf16 VARCHAR(50) CHARACTER SET utf16 NULL,
  utf32 VARCHAR(50) CHARACTER SET utf32 NULL,
  utf8mb3 VARCHAR(50) CHARACTER SET utf8mb3 NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_charsets VALUES
 (1, 'café naïve', 'Привет', 'Привет', 'Καλημέρα', 'שלום', 'Žluťoučký kůň', 'plain ascii',
     '表示', '許功蓋', '运算', 'ucs2 ∑', 'utf16 😀', 'utf32 😀', 'utf8mb3 ∑'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '', '', '', '', '', '', '', '', '', '', '', '', '', '');
UPDATE f_charsets SET
  latin1 = CONVERT(@all_bytes USING latin1),
  cp1251 = _cp1251 X'C0E0FF5C27225C',
  sjis = _sjis X'955C5C955C',
  big5 = _big5 X'A55CB35C5C',
  gbk = _gbk X'815C5C815C'
WHERE id = 3;

-- Bytes: BINARY pads with 0x00 (kept on read), trailing 0x00 and spaces
-- in VARBINARY, every BLOB size, and a LONGBLOB larger than the
-- destination's max_allowed_packet holding every byte value.
CREATE TABLE f_binary (
  id INT NOT NULL PRIMARY KEY,
  bin8 BINARY(8) NULL, bin1 BINARY(1) NULL, vb VARBINARY(64) NULL,
  tb TINYBLOB NULL, b BLOB NULL, mb MEDIUMBLOB NULL, lb LONGBLOB NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_binary VALUES
 (1, X'6162', X'00', X'610000', X'', X'', X'', X''),
 (2, X'FFFFFFFFFFFFFFFF', X'FF', X'612020', X'5C4E', REPEAT(X'5C', 65535), REPEAT(X'00FF0D0A09', 40000), X'00'),
 (3, X'00', X'5C', X'00', REPEAT(X'FF', 255), X'0A', X'5C30', NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, X'0102030405060708', X'0A', X'', X'27', X'22', X'1A',
     REPEAT(@all_bytes, 24576));

-- ENUM with an empty-string member (index 1) beside the invalid value
-- (index 0, also read as ''), members that read as numbers, and a SET of
-- 64 members.
CREATE TABLE f_enums (
  id INT NOT NULL PRIMARY KEY,
  e ENUM('', 'a', 'b c', '€', '2', '1', '0') NULL,
  e1 ENUM('only') NOT NULL,
  s SET('a', 'b', 'c', 'd') NULL,
  s64 SET('m01','m02','m03','m04','m05','m06','m07','m08','m09','m10','m11','m12','m13','m14','m15','m16',
          'm17','m18','m19','m20','m21','m22','m23','m24','m25','m26','m27','m28','m29','m30','m31','m32',
          'm33','m34','m35','m36','m37','m38','m39','m40','m41','m42','m43','m44','m45','m46','m47','m48',
          'm49','m50','m51','m52','m53','m54','m55','m56','m57','m58','m59','m60','m61','m62','m63','m64') NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_enums VALUES
 (1, '', 'only', '', 0),
 (2, 'not a member', '', 'a,d', 18446744073709551615),
 (3, '€', 'only', 'a,b,c,d', 1),
 (4, '1', 'only', 'c', 9223372036854775808),
 (5, 5, 'only', 2, 12345678901234567),
 (6, NULL, 'only', NULL, NULL);

-- Dates and times: zero and partial-zero dates, the ends of every range,
-- each fraction precision, local times inside daylight-saving gaps
-- (DATETIME keeps them), TIMESTAMPs at the epoch's ends and the two
-- instants a New York fall-back hour shows alike, negative TIME with
-- fractions, YEAR.
CREATE TABLE f_temporal (
  id INT NOT NULL PRIMARY KEY,
  d DATE NULL,
  dt0 DATETIME NULL, dt1 DATETIME(1) NULL, dt2 DATETIME(2) NULL, dt3 DATETIME(3) NULL,
  dt4 DATETIME(4) NULL, dt5 DATETIME(5) NULL, dt6 DATETIME(6) NULL,
  ts0 TIMESTAMP NULL DEFAULT NULL, ts3 TIMESTAMP(3) NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME NULL, tm6 TIME(6) NULL, y YEAR NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_temporal VALUES
 (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '0000-00-00 00:00:00.00',
     '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.0000', '0000-00-00 00:00:00.00000', '0000-00-00 00:00:00.000000',
     '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.000000', '00:00:00', '00:00:00.000000', 0),
 (2, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.0', '1000-01-01 00:00:00.00',
     '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.0000', '1000-01-01 00:00:00.00000', '1000-01-01 00:00:00.000000',
     '1970-01-01 00:00:01', '1970-01-01 00:00:01.000', '1970-01-01 00:00:01.000000', '-838:59:59', '-838:59:59.999999', 1901),
 (3, '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', '9999-12-31 23:59:59.99',
     '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.9999', '9999-12-31 23:59:59.99999', '9999-12-31 23:59:59.999999',
     '2038-01-19 03:14:07', '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.999999', '838:59:59', '838:59:59.999999', 2155),
 (4, '2024-00-15', '2024-02-00 12:00:00', '2024-03-31 02:30:00.5', '2024-03-10 02:30:00.25',
     '2024-10-06 02:15:00.125', '2024-03-31 02:59:59.9999', '2024-03-10 02:00:00.00001', '2024-03-31 02:00:00.000001',
     '2024-11-03 05:30:00', '2024-11-03 06:30:00.000', '2024-03-31 01:00:00.000001', '-00:00:01', '-00:00:00.000001', 2000),
 (5, '2020-02-29', '1969-12-31 23:59:59', '1970-01-01 00:00:00.1', '2038-01-19 03:14:08.01',
     '2000-02-29 00:00:00.001', '1899-12-31 23:59:59.9999', '2999-01-01 00:00:00.00001', '2024-10-27 02:30:00.500000',
     '2024-11-03 06:30:00', '2024-11-03 05:30:00.001', '2024-10-27 00:59:59.999999', '-12:34:56', '-838:59:58.999999', 1999),
 (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- JSON as stored text: escapes, nesting, numbers past any double,
-- duplicate keys, whitespace the server keeps.
CREATE TABLE f_json (
  id INT NOT NULL PRIMARY KEY,
  j JSON NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_json VALUES
 (1, '{"a": "\\u00e9\\n\\t\\"\\\\", "b": [1, -0, 1e400, 123456789012345678901234567890], "c": null}'),
 (2, '[[[[[[[[[[[[[[[[[[[[{"deep": true}]]]]]]]]]]]]]]]]]]]]'),
 (3, '{"k": 1, "k": 2}'),
 (4, ' {  "spaced" :  "out"  }  '),
 (5, '"😀"'),
 (6, '{}'),
 (7, 'null'),
 (8, NULL);

CREATE TABLE f_network (
  id INT NOT NULL PRIMARY KEY,
  u UUID NULL, v4 INET4 NULL, v6 INET6 NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_network VALUES
 (1, '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::'),
 (2, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
 (3, '123e4567-e89b-12d3-a456-426614174000', '192.0.2.1', '::ffff:198.51.100.7'),
 (4, '6ccd780c-baba-1026-9564-5b8c656024db', '203.0.113.255', '2001:db8::1'),
 (5, NULL, NULL, NULL);

CREATE TABLE f_spatial (
  id INT NOT NULL PRIMARY KEY,
  g GEOMETRY NULL, p POINT NULL, l LINESTRING NULL, pg POLYGON NULL,
  mp MULTIPOINT NULL, ml MULTILINESTRING NULL, mpg MULTIPOLYGON NULL, gc GEOMETRYCOLLECTION NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_spatial VALUES
 (1, ST_GeomFromText('POINT(-180 -90)', 4326), ST_GeomFromText('POINT(1.5 -2.25)'),
     ST_GeomFromText('LINESTRING(0 0, 1 1, 2 4)'),
     ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 3, 2 2))'),
     ST_GeomFromText('MULTIPOINT(0 0, 1e300 -1e300)'),
     ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))'),
     ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))'),
     ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 2 2))')),
 (2, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'), ST_GeomFromText('POINT(0.1 0.30000000000000004)', 3857),
     ST_GeomFromText('LINESTRING(-1 -1, 1 1)', 4326), ST_GeomFromText('POLYGON((0 0, 1 0, 0 1, 0 0))'),
     ST_GeomFromText('MULTIPOINT(5 5)'), ST_GeomFromText('MULTILINESTRING((0 0, 0 1))'),
     ST_GeomFromText('MULTIPOLYGON(((0 0, 2 0, 0 2, 0 0)))'), ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE f_generated (
  id INT NOT NULL PRIMARY KEY,
  a INT NULL, txt VARCHAR(100) NULL, doc JSON NULL,
  a2 BIGINT AS (a * 2) VIRTUAL,
  upper_txt VARCHAR(100) AS (UPPER(txt)) PERSISTENT,
  name_of VARCHAR(100) AS (JSON_UNQUOTE(JSON_EXTRACT(doc, '$.name'))) VIRTUAL,
  len INT AS (CHAR_LENGTH(txt)) STORED,
  KEY name_of (name_of)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_generated (id, a, txt, doc) VALUES
 (1, 2147483647, 'mixed Case ß', '{"name": "ünïcode"}'),
 (2, NULL, NULL, NULL),
 (3, -5, '', '{"name": null}');

CREATE TABLE f_invisible (
  id INT NOT NULL PRIMARY KEY,
  shown VARCHAR(20) NULL,
  hidden VARCHAR(20) INVISIBLE NULL,
  hidden_default INT NOT NULL INVISIBLE DEFAULT 7,
  hidden_blob BLOB INVISIBLE NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_invisible (id, shown, hidden, hidden_default, hidden_blob) VALUES
 (1, 'a', 'not in SELECT *', 1, X'00FF'), (2, 'b', NULL, 7, NULL), (3, NULL, '', -1, X'');

-- No primary key: duplicate rows, and a duplicated value longer than a
-- compare page.
CREATE TABLE f_nokey (
  k VARCHAR(20) NULL, v INT NULL, note MEDIUMTEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_nokey VALUES
 ('dup', 1, 'same row twice'), ('dup', 1, 'same row twice'), (NULL, NULL, NULL), ('', 0, ''),
 ('long', 2, REPEAT('ab😀', 200000)), ('long', 2, REPEAT('ab😀', 200000));

CREATE TABLE f_composite (
  a INT NOT NULL, b VARCHAR(20) NOT NULL, c DATE NOT NULL, v VARCHAR(20) NULL,
  PRIMARY KEY (b, a, c)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO f_composite VALUES
 (1, 'x', '2024-01-01', 'one'), (1, 'X', '2024-01-01', 'case'), (1, 'x', '0000-00-00', 'zero date'),
 (-1, '', '9999-12-31', NULL), (2147483647, 'é', '1000-01-01', 'accent'), (2, 'e', '1000-01-01', 'plain');

-- Keys that are not integers: text (case and accents told apart by the
-- collation), bytes, a date.
CREATE TABLE f_textkey (
  k VARCHAR(64) NOT NULL PRIMARY KEY, v INT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
INSERT INTO f_textkey VALUES ('a', 1), ('A', 2), ('á', 3), ('a ', 4), ('😀', 5), ('\\N', 6), ('', 7);
CREATE TABLE f_binkey (
  k BINARY(16) NOT NULL PRIMARY KEY, v VARCHAR(10) NULL
) ENGINE=InnoDB;
INSERT INTO f_binkey VALUES (X'00', 'zero'), (X'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF', 'ones'), (X'5C0A0927', 'escapes');
CREATE TABLE f_datekey (
  at DATETIME(6) NOT NULL PRIMARY KEY, v INT NULL
) ENGINE=InnoDB;
INSERT INTO f_datekey VALUES ('0000-00-00 00:00:00', 0), ('2024-03-31 02:30:00.000001', 1), ('9999-12-31 23:59:59.999999', 2);

-- Sequences: one used and cycled, one counting down, one a table's
-- default draws from.
CREATE SEQUENCE f_seq START WITH 100 INCREMENT BY 7 MINVALUE 1 MAXVALUE 1000 CACHE 10 CYCLE;
CREATE SEQUENCE f_seq_down START WITH -5 INCREMENT BY -3 MINVALUE -100 MAXVALUE -1 CACHE 0 NOCYCLE;
CREATE SEQUENCE f_seq_ids START WITH 1 INCREMENT BY 1 CACHE 1000;
CREATE TABLE f_seq_user (
  id BIGINT NOT NULL DEFAULT NEXTVAL(f_seq_ids) PRIMARY KEY,
  v VARCHAR(20) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO f_seq_user (v) VALUES ('first'), ('second'), ('third');
SELECT SETVAL(f_seq, 990, 1, 2);
SELECT NEXTVAL(f_seq_down), NEXTVAL(f_seq_down);

-- System-versioned tables: implicit period columns, explicit invisible
-- ones, history partitioned off; history rows written with their own
-- times (so the fixture does not depend on when it was made).
SET SESSION system_versioning_insert_history = 1;
CREATE TABLE f_versioned (
  id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 WITH SYSTEM VERSIONING;
INSERT INTO f_versioned (id, v, row_start, row_end) VALUES
 (1, 'first', '2020-01-01 00:00:00.000001', '2021-06-30 12:00:00.5'),
 (1, 'second', '2021-06-30 12:00:00.5', '2024-11-03 05:30:00'),
 (1, 'now', '2024-11-03 05:30:00', '2038-01-19 03:14:07.999999'),
 (2, 'deleted', '2022-02-02 02:02:02', '2023-03-03 03:03:03'),
 (3, NULL, '2019-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999');
CREATE TABLE f_periods (
  id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL,
  valid_from TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE,
  valid_to TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE,
  PERIOD FOR SYSTEM_TIME (valid_from, valid_to)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 WITH SYSTEM VERSIONING
  PARTITION BY SYSTEM_TIME (PARTITION p_history HISTORY, PARTITION p_current CURRENT);
INSERT INTO f_periods (id, v, valid_from, valid_to) VALUES
 (1, 'old', '2001-01-01 00:00:00', '2002-01-01 00:00:00'),
 (1, 'new', '2002-01-01 00:00:00', '2038-01-19 03:14:07.999999'),
 (2, 'gone', '2010-10-10 10:10:10.101010', '2011-11-11 11:11:11.111111');
SET SESSION system_versioning_insert_history = 0;
