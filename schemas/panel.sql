-- The panel database `psa` (PANEL.md): the subset of the Plesk panel
-- schema that hostmig reads on a source and writes on a destination,
-- written for hostmig so that a destination holds what a real source
-- holds: Plesk's own enum words, NULL allowed in every column but the
-- primary keys and the references that tie a row to its owner (cl_id,
-- dom_id, mn_id, db_id), the widths PANEL.md gives, else at least
-- VARCHAR(255) or TEXT. Booleans are ENUM('false','true') as in Plesk.
-- Idempotent: every table is created only when missing. A destination
-- created by an earlier hostmig is brought to this definition at start-up
-- (src/panel/schema.rs), never by dropping data.
-- Schema version 2.

CREATE TABLE IF NOT EXISTS accounts (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  type ENUM('plain','crypt','sym') NULL DEFAULT 'plain',
  password TEXT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS IP_Addresses (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  ip_address VARCHAR(15) NULL,
  mask VARCHAR(255) NULL DEFAULT '255.255.255.0',
  iface VARCHAR(255) NULL DEFAULT 'eth0',
  type ENUM('shared','exclusive') NULL DEFAULT 'shared',
  default_domain_id INT UNSIGNED NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ip_address (ip_address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Repository (
  rep_id INT UNSIGNED NOT NULL,
  component_id INT UNSIGNED NOT NULL,
  PRIMARY KEY (rep_id, component_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Limits (
  id INT UNSIGNED NOT NULL,
  limit_name VARCHAR(255) NOT NULL,
  value BIGINT NULL,
  PRIMARY KEY (id, limit_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Permissions (
  id INT UNSIGNED NOT NULL,
  permission VARCHAR(255) NOT NULL,
  value ENUM('false','true') NULL DEFAULT 'false',
  PRIMARY KEY (id, permission)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS clients (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  login VARCHAR(255) NULL,
  type ENUM('admin','reseller','client') NULL DEFAULT 'client',
  account_id INT UNSIGNED NULL DEFAULT 0,
  pname VARCHAR(255) NULL DEFAULT '',
  cname VARCHAR(255) NULL DEFAULT '',
  status BIGINT UNSIGNED NULL DEFAULT 0,
  phone VARCHAR(255) NULL DEFAULT NULL,
  fax VARCHAR(255) NULL DEFAULT NULL,
  email VARCHAR(255) NULL DEFAULT NULL,
  address TEXT NULL,
  city VARCHAR(255) NULL DEFAULT NULL,
  state VARCHAR(255) NULL DEFAULT NULL,
  pcode VARCHAR(255) NULL DEFAULT NULL,
  country VARCHAR(255) NULL DEFAULT NULL,
  locale VARCHAR(255) NULL DEFAULT 'en-US',
  limits_id INT UNSIGNED NULL DEFAULT NULL,
  perm_id INT UNSIGNED NULL DEFAULT NULL,
  pool_id INT UNSIGNED NULL DEFAULT NULL,
  cr_date DATE NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY login (login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS cl_param (
  cl_id INT UNSIGNED NOT NULL,
  param VARCHAR(255) NOT NULL,
  val TEXT NULL,
  PRIMARY KEY (cl_id, param)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS domains (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NULL,
  displayName VARCHAR(255) NULL DEFAULT '',
  cl_id INT UNSIGNED NOT NULL,
  status BIGINT UNSIGNED NULL DEFAULT 0,
  htype ENUM('none','vrt_hst','std_fwd','frm_fwd') NULL DEFAULT 'none',
  dns_zone_id INT UNSIGNED NULL DEFAULT NULL,
  limits_id INT UNSIGNED NULL DEFAULT NULL,
  real_size BIGINT UNSIGNED NULL DEFAULT 0,
  cr_date DATE NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (name),
  KEY cl_id (cl_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dom_param (
  dom_id INT UNSIGNED NOT NULL,
  param VARCHAR(255) NOT NULL,
  val TEXT NULL,
  PRIMARY KEY (dom_id, param)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS sys_users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  login VARCHAR(255) NULL,
  account_id INT UNSIGNED NULL DEFAULT 0,
  home TEXT NULL,
  shell VARCHAR(255) NULL DEFAULT '/bin/false',
  quota BIGINT UNSIGNED NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY login (login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS hosting (
  dom_id INT UNSIGNED NOT NULL,
  sys_user_id INT UNSIGNED NULL,
  ip_address_id INT UNSIGNED NULL DEFAULT 0,
  www_root TEXT NULL,
  ssi ENUM('false','true') NULL DEFAULT 'false',
  php ENUM('false','true') NULL DEFAULT 'false',
  php_safe_mode ENUM('false','true') NULL DEFAULT 'true',
  cgi ENUM('false','true') NULL DEFAULT 'false',
  perl ENUM('false','true') NULL DEFAULT 'false',
  python ENUM('false','true') NULL DEFAULT 'false',
  fastcgi ENUM('false','true') NULL DEFAULT 'false',
  `ssl` ENUM('false','true') NULL DEFAULT 'false',
  same_ssl ENUM('false','true') NULL DEFAULT 'false',
  webstat ENUM('none','webalizer','awstats','smarterstats','urchin') NULL DEFAULT 'none',
  traffic_bandwidth INT NULL DEFAULT -1,
  max_connection INT NULL DEFAULT -1,
  PRIMARY KEY (dom_id),
  UNIQUE KEY sys_user_id (sys_user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS forwarding (
  dom_id INT UNSIGNED NOT NULL,
  ip_address_id INT UNSIGNED NULL DEFAULT 0,
  redirect TEXT NULL,
  PRIMARY KEY (dom_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Cards (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  personalname VARCHAR(255) NULL DEFAULT '',
  companyname VARCHAR(255) NULL DEFAULT '',
  phone VARCHAR(255) NULL DEFAULT NULL,
  fax VARCHAR(255) NULL DEFAULT NULL,
  email VARCHAR(255) NULL DEFAULT NULL,
  address TEXT NULL,
  city VARCHAR(255) NULL DEFAULT NULL,
  state VARCHAR(255) NULL DEFAULT NULL,
  zip VARCHAR(255) NULL DEFAULT NULL,
  country VARCHAR(255) NULL DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dom_level_usrs (
  dom_id INT UNSIGNED NOT NULL,
  account_id INT UNSIGNED NULL DEFAULT 0,
  state ENUM('false','true') NULL DEFAULT 'false',
  card_id INT UNSIGNED NULL DEFAULT 0,
  perm_id INT UNSIGNED NULL DEFAULT NULL,
  PRIMARY KEY (dom_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dom_id INT UNSIGNED NOT NULL,
  mail_name VARCHAR(255) NULL,
  account_id INT UNSIGNED NULL DEFAULT 0,
  postbox ENUM('false','true') NULL DEFAULT 'false',
  redirect ENUM('false','true') NULL DEFAULT 'false',
  redir_addr TEXT NULL,
  mail_group ENUM('false','true') NULL DEFAULT 'false',
  autoresponder ENUM('false','true') NULL DEFAULT 'false',
  spamfilter ENUM('false','true') NULL DEFAULT 'false',
  virusfilter ENUM('none','incoming','outgoing','any') NULL DEFAULT 'none',
  mbox_quota BIGINT NULL DEFAULT -1,
  perm_id INT UNSIGNED NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY dom_id (dom_id, mail_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail_aliases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  mn_id INT UNSIGNED NOT NULL,
  alias VARCHAR(255) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mn_id (mn_id, alias)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail_redir (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  mn_id INT UNSIGNED NOT NULL,
  address TEXT NULL,
  PRIMARY KEY (id),
  KEY mn_id (mn_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dns_zone (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NULL,
  displayName VARCHAR(255) NULL DEFAULT '',
  status BIGINT UNSIGNED NULL DEFAULT 0,
  email VARCHAR(255) NULL DEFAULT NULL,
  type ENUM('master','slave') NULL DEFAULT 'master',
  ttl BIGINT UNSIGNED NULL DEFAULT 86400,
  ttl_unit BIGINT UNSIGNED NULL DEFAULT 1,
  refresh BIGINT UNSIGNED NULL DEFAULT 10800,
  refresh_unit BIGINT UNSIGNED NULL DEFAULT 1,
  retry BIGINT UNSIGNED NULL DEFAULT 3600,
  retry_unit BIGINT UNSIGNED NULL DEFAULT 1,
  expire BIGINT UNSIGNED NULL DEFAULT 604800,
  expire_unit BIGINT UNSIGNED NULL DEFAULT 1,
  minimum BIGINT UNSIGNED NULL DEFAULT 10800,
  minimum_unit BIGINT UNSIGNED NULL DEFAULT 1,
  serial_format ENUM('UNIXTIMESTAMP','YYYYMMDDNN') NULL DEFAULT 'UNIXTIMESTAMP',
  serial VARCHAR(255) NULL DEFAULT '0',
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dns_recs (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dns_zone_id INT UNSIGNED NULL,
  type ENUM('NS','A','AAAA','CNAME','MX','PTR','TXT','SRV','AXFR','CAA','DS','TLSA','SPF','HINFO','NAPTR','DNAME','SSHFP','master','none') NULL DEFAULT 'A',
  host VARCHAR(255) NULL,
  displayHost VARCHAR(255) NULL DEFAULT '',
  val TEXT NULL,
  displayVal TEXT NULL,
  opt VARCHAR(255) NULL DEFAULT '',
  time_stamp TIMESTAMP NULL DEFAULT NULL,
  PRIMARY KEY (id),
  KEY dns_zone_id (dns_zone_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS subdomains (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dom_id INT UNSIGNED NOT NULL,
  name VARCHAR(255) CHARACTER SET ascii NULL,
  displayName VARCHAR(255) NULL DEFAULT '',
  sys_user_type ENUM('main','native') NULL DEFAULT 'main',
  sys_user_id INT UNSIGNED NULL DEFAULT NULL,
  ssi ENUM('false','true') NULL DEFAULT 'false',
  php ENUM('false','true') NULL DEFAULT 'false',
  cgi ENUM('false','true') NULL DEFAULT 'false',
  perl ENUM('false','true') NULL DEFAULT 'false',
  python ENUM('false','true') NULL DEFAULT 'false',
  fastcgi ENUM('false','true') NULL DEFAULT 'false',
  PRIMARY KEY (id),
  UNIQUE KEY dom_id (dom_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS domainaliases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NULL,
  displayName VARCHAR(255) NULL DEFAULT '',
  dom_id INT UNSIGNED NOT NULL,
  dns_zone_id INT UNSIGNED NULL DEFAULT NULL,
  status BIGINT UNSIGNED NULL DEFAULT 0,
  dns ENUM('false','true') NULL DEFAULT 'true',
  mail ENUM('false','true') NULL DEFAULT 'false',
  web ENUM('false','true') NULL DEFAULT 'true',
  PRIMARY KEY (id),
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS data_bases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NULL,
  type ENUM('mysql','postgresql','mssql') NULL DEFAULT 'mysql',
  dom_id INT UNSIGNED NOT NULL,
  db_server_id INT UNSIGNED NULL,
  default_user_id INT UNSIGNED NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (name, db_server_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS db_users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  db_id INT UNSIGNED NOT NULL,
  login VARCHAR(16) NULL,
  account_id INT UNSIGNED NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY db_id (db_id, login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS DatabaseServers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  host VARCHAR(255) NULL,
  port INT UNSIGNED NULL DEFAULT 3306,
  type ENUM('mysql','postgresql','mssql') NULL DEFAULT 'mysql',
  admin_login VARCHAR(255) NULL DEFAULT 'admin',
  admin_password TEXT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY host_port_type (host, port, type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS misc (
  param VARCHAR(255) NOT NULL,
  val TEXT NULL,
  PRIMARY KEY (param)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Components (
  name VARCHAR(255) NOT NULL,
  version VARCHAR(255) NULL DEFAULT '',
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
