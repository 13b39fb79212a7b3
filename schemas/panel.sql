-- The panel database `psa` (PANEL.md): the subset of the Plesk 8.x panel
-- schema that hostmig reads on a source and writes on a destination.
-- Written for hostmig; booleans are ENUM('false','true') as in Plesk.
-- Idempotent: every table is created only when missing.

CREATE TABLE IF NOT EXISTS accounts (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  type ENUM('plain','crypt') NOT NULL DEFAULT 'plain',
  password TEXT,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS IP_Addresses (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  ip_address VARCHAR(15) NOT NULL,
  mask VARCHAR(15) NOT NULL DEFAULT '255.255.255.0',
  iface VARCHAR(255) NOT NULL DEFAULT 'eth0',
  type ENUM('shared','exclusive') NOT NULL DEFAULT 'shared',
  default_domain_id INT UNSIGNED DEFAULT NULL,
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
  limit_name VARCHAR(64) NOT NULL,
  value BIGINT NOT NULL,
  PRIMARY KEY (id, limit_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Permissions (
  id INT UNSIGNED NOT NULL,
  permission VARCHAR(64) NOT NULL,
  value ENUM('false','true') NOT NULL DEFAULT 'false',
  PRIMARY KEY (id, permission)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS clients (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  login VARCHAR(64) NOT NULL,
  account_id INT UNSIGNED NOT NULL DEFAULT 0,
  pname VARCHAR(255) NOT NULL DEFAULT '',
  cname VARCHAR(255) NOT NULL DEFAULT '',
  status BIGINT UNSIGNED NOT NULL DEFAULT 0,
  phone VARCHAR(255) DEFAULT NULL,
  fax VARCHAR(255) DEFAULT NULL,
  email VARCHAR(255) DEFAULT NULL,
  address VARCHAR(255) DEFAULT NULL,
  city VARCHAR(255) DEFAULT NULL,
  state VARCHAR(255) DEFAULT NULL,
  pcode VARCHAR(10) DEFAULT NULL,
  country CHAR(2) DEFAULT NULL,
  locale VARCHAR(17) NOT NULL DEFAULT 'en-US',
  limits_id INT UNSIGNED DEFAULT NULL,
  perm_id INT UNSIGNED DEFAULT NULL,
  pool_id INT UNSIGNED DEFAULT NULL,
  cr_date DATE DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY login (login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS domains (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NOT NULL,
  displayName VARCHAR(255) NOT NULL DEFAULT '',
  cl_id INT UNSIGNED NOT NULL,
  status BIGINT UNSIGNED NOT NULL DEFAULT 0,
  htype ENUM('none','vrt_hst','std_fwd','frm_fwd') NOT NULL DEFAULT 'none',
  dns_zone_id INT UNSIGNED DEFAULT NULL,
  limits_id INT UNSIGNED DEFAULT NULL,
  real_size BIGINT UNSIGNED NOT NULL DEFAULT 0,
  cr_date DATE DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (name),
  KEY cl_id (cl_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS sys_users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  login VARCHAR(32) NOT NULL,
  account_id INT UNSIGNED NOT NULL DEFAULT 0,
  home VARCHAR(255) NOT NULL,
  shell VARCHAR(255) NOT NULL DEFAULT '/bin/false',
  quota BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY login (login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS hosting (
  dom_id INT UNSIGNED NOT NULL,
  sys_user_id INT UNSIGNED NOT NULL,
  ip_address_id INT UNSIGNED NOT NULL DEFAULT 0,
  ssi ENUM('false','true') NOT NULL DEFAULT 'false',
  php ENUM('false','true') NOT NULL DEFAULT 'false',
  php_safe_mode ENUM('false','true') NOT NULL DEFAULT 'true',
  cgi ENUM('false','true') NOT NULL DEFAULT 'false',
  perl ENUM('false','true') NOT NULL DEFAULT 'false',
  python ENUM('false','true') NOT NULL DEFAULT 'false',
  fastcgi ENUM('false','true') NOT NULL DEFAULT 'false',
  `ssl` ENUM('false','true') NOT NULL DEFAULT 'false',
  same_ssl ENUM('false','true') NOT NULL DEFAULT 'false',
  webstat ENUM('none','webalizer','awstats') NOT NULL DEFAULT 'none',
  traffic_bandwidth INT NOT NULL DEFAULT -1,
  max_connection INT NOT NULL DEFAULT -1,
  PRIMARY KEY (dom_id),
  UNIQUE KEY sys_user_id (sys_user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS forwarding (
  dom_id INT UNSIGNED NOT NULL,
  ip_address_id INT UNSIGNED NOT NULL DEFAULT 0,
  redirect VARCHAR(255) NOT NULL,
  PRIMARY KEY (dom_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Cards (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  personalname VARCHAR(255) NOT NULL DEFAULT '',
  companyname VARCHAR(255) NOT NULL DEFAULT '',
  phone VARCHAR(255) DEFAULT NULL,
  fax VARCHAR(255) DEFAULT NULL,
  email VARCHAR(255) DEFAULT NULL,
  address VARCHAR(255) DEFAULT NULL,
  city VARCHAR(255) DEFAULT NULL,
  state VARCHAR(255) DEFAULT NULL,
  zip VARCHAR(10) DEFAULT NULL,
  country CHAR(2) DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dom_level_usrs (
  dom_id INT UNSIGNED NOT NULL,
  account_id INT UNSIGNED NOT NULL DEFAULT 0,
  state ENUM('false','true') NOT NULL DEFAULT 'false',
  card_id INT UNSIGNED NOT NULL DEFAULT 0,
  perm_id INT UNSIGNED DEFAULT NULL,
  PRIMARY KEY (dom_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dom_id INT UNSIGNED NOT NULL,
  mail_name VARCHAR(245) NOT NULL,
  account_id INT UNSIGNED NOT NULL DEFAULT 0,
  postbox ENUM('false','true') NOT NULL DEFAULT 'false',
  redirect ENUM('false','true') NOT NULL DEFAULT 'false',
  redir_addr VARCHAR(255) DEFAULT NULL,
  mail_group ENUM('false','true') NOT NULL DEFAULT 'false',
  autoresponder ENUM('false','true') NOT NULL DEFAULT 'false',
  spamfilter ENUM('false','true') NOT NULL DEFAULT 'false',
  virusfilter ENUM('none','incoming','outgoing','any') NOT NULL DEFAULT 'none',
  mbox_quota BIGINT NOT NULL DEFAULT -1,
  perm_id INT UNSIGNED DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY dom_id (dom_id, mail_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail_aliases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  mn_id INT UNSIGNED NOT NULL,
  alias VARCHAR(245) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mn_id (mn_id, alias)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS mail_redir (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  mn_id INT UNSIGNED NOT NULL,
  address VARCHAR(255) NOT NULL,
  PRIMARY KEY (id),
  KEY mn_id (mn_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dns_zone (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NOT NULL,
  displayName VARCHAR(255) NOT NULL DEFAULT '',
  status BIGINT UNSIGNED NOT NULL DEFAULT 0,
  email VARCHAR(255) DEFAULT NULL,
  type ENUM('master','slave') NOT NULL DEFAULT 'master',
  ttl BIGINT UNSIGNED NOT NULL DEFAULT 86400,
  refresh BIGINT UNSIGNED NOT NULL DEFAULT 10800,
  retry BIGINT UNSIGNED NOT NULL DEFAULT 3600,
  expire BIGINT UNSIGNED NOT NULL DEFAULT 604800,
  minimum BIGINT UNSIGNED NOT NULL DEFAULT 10800,
  serial_format ENUM('UNIXTIME','YYYYMMDDNN') NOT NULL DEFAULT 'UNIXTIME',
  serial VARCHAR(12) NOT NULL DEFAULT '0',
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dns_recs (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dns_zone_id INT UNSIGNED NOT NULL,
  type ENUM('NS','A','AAAA','CNAME','MX','PTR','TXT','SRV','AXFR','master','none') NOT NULL DEFAULT 'A',
  host VARCHAR(255) NOT NULL,
  displayHost VARCHAR(255) NOT NULL DEFAULT '',
  val VARCHAR(255) NOT NULL,
  displayVal VARCHAR(255) NOT NULL DEFAULT '',
  opt VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY dns_zone_id (dns_zone_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS subdomains (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  dom_id INT UNSIGNED NOT NULL,
  name VARCHAR(63) CHARACTER SET ascii NOT NULL,
  displayName VARCHAR(255) NOT NULL DEFAULT '',
  sys_user_type ENUM('main','native') NOT NULL DEFAULT 'main',
  sys_user_id INT UNSIGNED DEFAULT NULL,
  ssi ENUM('false','true') NOT NULL DEFAULT 'false',
  php ENUM('false','true') NOT NULL DEFAULT 'false',
  cgi ENUM('false','true') NOT NULL DEFAULT 'false',
  perl ENUM('false','true') NOT NULL DEFAULT 'false',
  python ENUM('false','true') NOT NULL DEFAULT 'false',
  fastcgi ENUM('false','true') NOT NULL DEFAULT 'false',
  PRIMARY KEY (id),
  UNIQUE KEY dom_id (dom_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS domainaliases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) CHARACTER SET ascii NOT NULL,
  displayName VARCHAR(255) NOT NULL DEFAULT '',
  dom_id INT UNSIGNED NOT NULL,
  dns_zone_id INT UNSIGNED DEFAULT NULL,
  status BIGINT UNSIGNED NOT NULL DEFAULT 0,
  dns ENUM('false','true') NOT NULL DEFAULT 'true',
  mail ENUM('false','true') NOT NULL DEFAULT 'false',
  web ENUM('false','true') NOT NULL DEFAULT 'true',
  PRIMARY KEY (id),
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS data_bases (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(63) NOT NULL,
  type ENUM('mysql','postgresql','mssql') NOT NULL DEFAULT 'mysql',
  dom_id INT UNSIGNED NOT NULL,
  db_server_id INT UNSIGNED NOT NULL,
  default_user_id INT UNSIGNED DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (name, db_server_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS db_users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  db_id INT UNSIGNED NOT NULL,
  login VARCHAR(16) NOT NULL,
  account_id INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY db_id (db_id, login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS DatabaseServers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  host VARCHAR(255) NOT NULL,
  port INT UNSIGNED NOT NULL DEFAULT 3306,
  type ENUM('mysql','postgresql','mssql') NOT NULL DEFAULT 'mysql',
  admin_login VARCHAR(255) NOT NULL DEFAULT 'admin',
  admin_password VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  UNIQUE KEY host_port_type (host, port, type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS misc (
  param VARCHAR(64) NOT NULL,
  val VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (param)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS Components (
  name VARCHAR(64) NOT NULL,
  version VARCHAR(64) NOT NULL DEFAULT '',
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
