-- Callee time: phone numbers in E.164, the time zone a number most likely rings in, and
-- calling-window arithmetic in that zone. The campaign tick asks these functions when a
-- callee may be dialed, always in the callee's local time, never the server's.

-- Tables ---------------------------------------------------------------------------------
create table internal.calling_code (
  prefix text primary key check (prefix ~ '^[1-9][0-9]{0,3}$'),
  country text not null check (country ~ '^[A-Z]{2}$'),
  timezone text not null check (internal.is_timezone(timezone))
);
comment on table internal.calling_code is
  'ITU country calling codes with the ISO country and one representative IANA zone, read by number_country, '
  'number_timezone and normalise_number. A country spanning several zones gets the zone of its most populous '
  'region (RU Moscow, BR Sao Paulo, AU Sydney, MX Mexico City, ID Jakarta, CD Kinshasa, CN Shanghai). '
  'A few rows are longer number prefixes inside a shared code (76 and 77 are Kazakhstan within +7). '
  'Numbers under +1 are resolved by area code in nanp_area_code; the row for 1 only names the plan''s code. '
  'Non-geographic codes (800, 808, 870, 878, 881-883, 888, 979, 991) are left out: they have no local time.';

create table internal.nanp_area_code (
  area_code text primary key check (area_code ~ '^[2-9][0-9]{2}$'),
  country text not null check (country ~ '^[A-Z]{2}$'),
  region text not null,
  timezone text not null check (internal.is_timezone(timezone))
);
comment on table internal.nanp_area_code is
  'Geographic North American Numbering Plan area codes (US, Canada, Caribbean and Pacific members) with the '
  'IANA zone covering most of each code''s population, read by number_country and number_timezone. '
  'Toll-free, premium and other non-geographic codes (5XX, 600, 700, 710, 8XX toll-free, 900) are absent on '
  'purpose: a number under them has no known local time.';
comment on column internal.nanp_area_code.region is 'State, province, territory or country the area code serves.';

-- Data: calling codes and NANP area codes, each with the IANA zone of most of its callers.
insert into internal.calling_code (prefix, country, timezone) values
  ('1', 'US', 'America/New_York'),
  ('7', 'RU', 'Europe/Moscow'),
  ('76', 'KZ', 'Asia/Almaty'),
  ('77', 'KZ', 'Asia/Almaty'),
  ('20', 'EG', 'Africa/Cairo'),
  ('211', 'SS', 'Africa/Juba'),
  ('212', 'MA', 'Africa/Casablanca'),
  ('213', 'DZ', 'Africa/Algiers'),
  ('216', 'TN', 'Africa/Tunis'),
  ('218', 'LY', 'Africa/Tripoli'),
  ('220', 'GM', 'Africa/Banjul'),
  ('221', 'SN', 'Africa/Dakar'),
  ('222', 'MR', 'Africa/Nouakchott'),
  ('223', 'ML', 'Africa/Bamako'),
  ('224', 'GN', 'Africa/Conakry'),
  ('225', 'CI', 'Africa/Abidjan'),
  ('226', 'BF', 'Africa/Ouagadougou'),
  ('227', 'NE', 'Africa/Niamey'),
  ('228', 'TG', 'Africa/Lome'),
  ('229', 'BJ', 'Africa/Porto-Novo'),
  ('230', 'MU', 'Indian/Mauritius'),
  ('231', 'LR', 'Africa/Monrovia'),
  ('232', 'SL', 'Africa/Freetown'),
  ('233', 'GH', 'Africa/Accra'),
  ('234', 'NG', 'Africa/Lagos'),
  ('235', 'TD', 'Africa/Ndjamena'),
  ('236', 'CF', 'Africa/Bangui'),
  ('237', 'CM', 'Africa/Douala'),
  ('238', 'CV', 'Atlantic/Cape_Verde'),
  ('239', 'ST', 'Africa/Sao_Tome'),
  ('240', 'GQ', 'Africa/Malabo'),
  ('241', 'GA', 'Africa/Libreville'),
  ('242', 'CG', 'Africa/Brazzaville'),
  ('243', 'CD', 'Africa/Kinshasa'),
  ('244', 'AO', 'Africa/Luanda'),
  ('245', 'GW', 'Africa/Bissau'),
  ('246', 'IO', 'Indian/Chagos'),
  ('247', 'AC', 'Atlantic/St_Helena'),
  ('248', 'SC', 'Indian/Mahe'),
  ('249', 'SD', 'Africa/Khartoum'),
  ('250', 'RW', 'Africa/Kigali'),
  ('251', 'ET', 'Africa/Addis_Ababa'),
  ('252', 'SO', 'Africa/Mogadishu'),
  ('253', 'DJ', 'Africa/Djibouti'),
  ('254', 'KE', 'Africa/Nairobi'),
  ('255', 'TZ', 'Africa/Dar_es_Salaam'),
  ('256', 'UG', 'Africa/Kampala'),
  ('257', 'BI', 'Africa/Bujumbura'),
  ('258', 'MZ', 'Africa/Maputo'),
  ('260', 'ZM', 'Africa/Lusaka'),
  ('261', 'MG', 'Indian/Antananarivo'),
  ('262', 'RE', 'Indian/Reunion'),
  ('263', 'ZW', 'Africa/Harare'),
  ('264', 'NA', 'Africa/Windhoek'),
  ('265', 'MW', 'Africa/Blantyre'),
  ('266', 'LS', 'Africa/Maseru'),
  ('267', 'BW', 'Africa/Gaborone'),
  ('268', 'SZ', 'Africa/Mbabane'),
  ('269', 'KM', 'Indian/Comoro'),
  ('27', 'ZA', 'Africa/Johannesburg'),
  ('290', 'SH', 'Atlantic/St_Helena'),
  ('291', 'ER', 'Africa/Asmara'),
  ('297', 'AW', 'America/Aruba'),
  ('298', 'FO', 'Atlantic/Faroe'),
  ('299', 'GL', 'America/Nuuk'),
  ('30', 'GR', 'Europe/Athens'),
  ('31', 'NL', 'Europe/Amsterdam'),
  ('32', 'BE', 'Europe/Brussels'),
  ('33', 'FR', 'Europe/Paris'),
  ('34', 'ES', 'Europe/Madrid'),
  ('350', 'GI', 'Europe/Gibraltar'),
  ('351', 'PT', 'Europe/Lisbon'),
  ('352', 'LU', 'Europe/Luxembourg'),
  ('353', 'IE', 'Europe/Dublin'),
  ('354', 'IS', 'Atlantic/Reykjavik'),
  ('355', 'AL', 'Europe/Tirane'),
  ('356', 'MT', 'Europe/Malta'),
  ('357', 'CY', 'Asia/Nicosia'),
  ('358', 'FI', 'Europe/Helsinki'),
  ('359', 'BG', 'Europe/Sofia'),
  ('36', 'HU', 'Europe/Budapest'),
  ('370', 'LT', 'Europe/Vilnius'),
  ('371', 'LV', 'Europe/Riga'),
  ('372', 'EE', 'Europe/Tallinn'),
  ('373', 'MD', 'Europe/Chisinau'),
  ('374', 'AM', 'Asia/Yerevan'),
  ('375', 'BY', 'Europe/Minsk'),
  ('376', 'AD', 'Europe/Andorra'),
  ('377', 'MC', 'Europe/Monaco'),
  ('378', 'SM', 'Europe/San_Marino'),
  ('379', 'VA', 'Europe/Vatican'),
  ('380', 'UA', 'Europe/Kyiv'),
  ('381', 'RS', 'Europe/Belgrade'),
  ('382', 'ME', 'Europe/Podgorica'),
  ('383', 'XK', 'Europe/Belgrade'),
  ('385', 'HR', 'Europe/Zagreb'),
  ('386', 'SI', 'Europe/Ljubljana'),
  ('387', 'BA', 'Europe/Sarajevo'),
  ('389', 'MK', 'Europe/Skopje'),
  ('39', 'IT', 'Europe/Rome'),
  ('40', 'RO', 'Europe/Bucharest'),
  ('41', 'CH', 'Europe/Zurich'),
  ('420', 'CZ', 'Europe/Prague'),
  ('421', 'SK', 'Europe/Bratislava'),
  ('423', 'LI', 'Europe/Vaduz'),
  ('43', 'AT', 'Europe/Vienna'),
  ('44', 'GB', 'Europe/London'),
  ('45', 'DK', 'Europe/Copenhagen'),
  ('46', 'SE', 'Europe/Stockholm'),
  ('47', 'NO', 'Europe/Oslo'),
  ('48', 'PL', 'Europe/Warsaw'),
  ('49', 'DE', 'Europe/Berlin'),
  ('500', 'FK', 'Atlantic/Stanley'),
  ('501', 'BZ', 'America/Belize'),
  ('502', 'GT', 'America/Guatemala'),
  ('503', 'SV', 'America/El_Salvador'),
  ('504', 'HN', 'America/Tegucigalpa'),
  ('505', 'NI', 'America/Managua'),
  ('506', 'CR', 'America/Costa_Rica'),
  ('507', 'PA', 'America/Panama'),
  ('508', 'PM', 'America/Miquelon'),
  ('509', 'HT', 'America/Port-au-Prince'),
  ('51', 'PE', 'America/Lima'),
  ('52', 'MX', 'America/Mexico_City'),
  ('53', 'CU', 'America/Havana'),
  ('54', 'AR', 'America/Argentina/Buenos_Aires'),
  ('55', 'BR', 'America/Sao_Paulo'),
  ('56', 'CL', 'America/Santiago'),
  ('57', 'CO', 'America/Bogota'),
  ('58', 'VE', 'America/Caracas'),
  ('590', 'GP', 'America/Guadeloupe'),
  ('591', 'BO', 'America/La_Paz'),
  ('592', 'GY', 'America/Guyana'),
  ('593', 'EC', 'America/Guayaquil'),
  ('594', 'GF', 'America/Cayenne'),
  ('595', 'PY', 'America/Asuncion'),
  ('596', 'MQ', 'America/Martinique'),
  ('597', 'SR', 'America/Paramaribo'),
  ('598', 'UY', 'America/Montevideo'),
  ('599', 'CW', 'America/Curacao'),
  ('60', 'MY', 'Asia/Kuala_Lumpur'),
  ('61', 'AU', 'Australia/Sydney'),
  ('62', 'ID', 'Asia/Jakarta'),
  ('63', 'PH', 'Asia/Manila'),
  ('64', 'NZ', 'Pacific/Auckland'),
  ('65', 'SG', 'Asia/Singapore'),
  ('66', 'TH', 'Asia/Bangkok'),
  ('670', 'TL', 'Asia/Dili'),
  ('672', 'NF', 'Pacific/Norfolk'),
  ('673', 'BN', 'Asia/Brunei'),
  ('674', 'NR', 'Pacific/Nauru'),
  ('675', 'PG', 'Pacific/Port_Moresby'),
  ('676', 'TO', 'Pacific/Tongatapu'),
  ('677', 'SB', 'Pacific/Guadalcanal'),
  ('678', 'VU', 'Pacific/Efate'),
  ('679', 'FJ', 'Pacific/Fiji'),
  ('680', 'PW', 'Pacific/Palau'),
  ('681', 'WF', 'Pacific/Wallis'),
  ('682', 'CK', 'Pacific/Rarotonga'),
  ('683', 'NU', 'Pacific/Niue'),
  ('685', 'WS', 'Pacific/Apia'),
  ('686', 'KI', 'Pacific/Tarawa'),
  ('687', 'NC', 'Pacific/Noumea'),
  ('688', 'TV', 'Pacific/Funafuti'),
  ('689', 'PF', 'Pacific/Tahiti'),
  ('690', 'TK', 'Pacific/Fakaofo'),
  ('691', 'FM', 'Pacific/Chuuk'),
  ('692', 'MH', 'Pacific/Majuro'),
  ('81', 'JP', 'Asia/Tokyo'),
  ('82', 'KR', 'Asia/Seoul'),
  ('84', 'VN', 'Asia/Ho_Chi_Minh'),
  ('850', 'KP', 'Asia/Pyongyang'),
  ('852', 'HK', 'Asia/Hong_Kong'),
  ('853', 'MO', 'Asia/Macau'),
  ('855', 'KH', 'Asia/Phnom_Penh'),
  ('856', 'LA', 'Asia/Vientiane'),
  ('86', 'CN', 'Asia/Shanghai'),
  ('880', 'BD', 'Asia/Dhaka'),
  ('886', 'TW', 'Asia/Taipei'),
  ('90', 'TR', 'Europe/Istanbul'),
  ('91', 'IN', 'Asia/Kolkata'),
  ('92', 'PK', 'Asia/Karachi'),
  ('93', 'AF', 'Asia/Kabul'),
  ('94', 'LK', 'Asia/Colombo'),
  ('95', 'MM', 'Asia/Yangon'),
  ('960', 'MV', 'Indian/Maldives'),
  ('961', 'LB', 'Asia/Beirut'),
  ('962', 'JO', 'Asia/Amman'),
  ('963', 'SY', 'Asia/Damascus'),
  ('964', 'IQ', 'Asia/Baghdad'),
  ('965', 'KW', 'Asia/Kuwait'),
  ('966', 'SA', 'Asia/Riyadh'),
  ('967', 'YE', 'Asia/Aden'),
  ('968', 'OM', 'Asia/Muscat'),
  ('970', 'PS', 'Asia/Hebron'),
  ('971', 'AE', 'Asia/Dubai'),
  ('972', 'IL', 'Asia/Jerusalem'),
  ('973', 'BH', 'Asia/Bahrain'),
  ('974', 'QA', 'Asia/Qatar'),
  ('975', 'BT', 'Asia/Thimphu'),
  ('976', 'MN', 'Asia/Ulaanbaatar'),
  ('977', 'NP', 'Asia/Kathmandu'),
  ('98', 'IR', 'Asia/Tehran'),
  ('992', 'TJ', 'Asia/Dushanbe'),
  ('993', 'TM', 'Asia/Ashgabat'),
  ('994', 'AZ', 'Asia/Baku'),
  ('995', 'GE', 'Asia/Tbilisi'),
  ('996', 'KG', 'Asia/Bishkek'),
  ('998', 'UZ', 'Asia/Tashkent');

insert into internal.nanp_area_code (area_code, country, region, timezone) values
  ('201', 'US', 'New Jersey', 'America/New_York'),
  ('202', 'US', 'District of Columbia', 'America/New_York'),
  ('203', 'US', 'Connecticut', 'America/New_York'),
  ('204', 'CA', 'Manitoba', 'America/Winnipeg'),
  ('205', 'US', 'Alabama', 'America/Chicago'),
  ('206', 'US', 'Washington', 'America/Los_Angeles'),
  ('207', 'US', 'Maine', 'America/New_York'),
  ('208', 'US', 'Idaho', 'America/Boise'),
  ('209', 'US', 'California', 'America/Los_Angeles'),
  ('210', 'US', 'Texas', 'America/Chicago'),
  ('212', 'US', 'New York', 'America/New_York'),
  ('213', 'US', 'California', 'America/Los_Angeles'),
  ('214', 'US', 'Texas', 'America/Chicago'),
  ('215', 'US', 'Pennsylvania', 'America/New_York'),
  ('216', 'US', 'Ohio', 'America/New_York'),
  ('217', 'US', 'Illinois', 'America/Chicago'),
  ('218', 'US', 'Minnesota', 'America/Chicago'),
  ('219', 'US', 'Indiana', 'America/Chicago'),
  ('220', 'US', 'Ohio', 'America/New_York'),
  ('223', 'US', 'Pennsylvania', 'America/New_York'),
  ('224', 'US', 'Illinois', 'America/Chicago'),
  ('225', 'US', 'Louisiana', 'America/Chicago'),
  ('226', 'CA', 'Ontario', 'America/Toronto'),
  ('227', 'US', 'Maryland', 'America/New_York'),
  ('228', 'US', 'Mississippi', 'America/Chicago'),
  ('229', 'US', 'Georgia', 'America/New_York'),
  ('231', 'US', 'Michigan', 'America/Detroit'),
  ('234', 'US', 'Ohio', 'America/New_York'),
  ('235', 'US', 'Missouri', 'America/Chicago'),
  ('236', 'CA', 'British Columbia', 'America/Vancouver'),
  ('239', 'US', 'Florida', 'America/New_York'),
  ('240', 'US', 'Maryland', 'America/New_York'),
  ('242', 'BS', 'Bahamas', 'America/Nassau'),
  ('246', 'BB', 'Barbados', 'America/Barbados'),
  ('248', 'US', 'Michigan', 'America/Detroit'),
  ('249', 'CA', 'Ontario', 'America/Toronto'),
  ('250', 'CA', 'British Columbia', 'America/Vancouver'),
  ('251', 'US', 'Alabama', 'America/Chicago'),
  ('252', 'US', 'North Carolina', 'America/New_York'),
  ('253', 'US', 'Washington', 'America/Los_Angeles'),
  ('254', 'US', 'Texas', 'America/Chicago'),
  ('256', 'US', 'Alabama', 'America/Chicago'),
  ('257', 'CA', 'British Columbia', 'America/Vancouver'),
  ('260', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('262', 'US', 'Wisconsin', 'America/Chicago'),
  ('263', 'CA', 'Quebec', 'America/Toronto'),
  ('264', 'AI', 'Anguilla', 'America/Anguilla'),
  ('267', 'US', 'Pennsylvania', 'America/New_York'),
  ('268', 'AG', 'Antigua and Barbuda', 'America/Antigua'),
  ('269', 'US', 'Michigan', 'America/Detroit'),
  ('270', 'US', 'Kentucky', 'America/Chicago'),
  ('272', 'US', 'Pennsylvania', 'America/New_York'),
  ('274', 'US', 'Wisconsin', 'America/Chicago'),
  ('276', 'US', 'Virginia', 'America/New_York'),
  ('279', 'US', 'California', 'America/Los_Angeles'),
  ('281', 'US', 'Texas', 'America/Chicago'),
  ('283', 'US', 'Ohio', 'America/New_York'),
  ('284', 'VG', 'British Virgin Islands', 'America/Tortola'),
  ('289', 'CA', 'Ontario', 'America/Toronto'),
  ('301', 'US', 'Maryland', 'America/New_York'),
  ('302', 'US', 'Delaware', 'America/New_York'),
  ('303', 'US', 'Colorado', 'America/Denver'),
  ('304', 'US', 'West Virginia', 'America/New_York'),
  ('305', 'US', 'Florida', 'America/New_York'),
  ('306', 'CA', 'Saskatchewan', 'America/Regina'),
  ('307', 'US', 'Wyoming', 'America/Denver'),
  ('308', 'US', 'Nebraska', 'America/Chicago'),
  ('309', 'US', 'Illinois', 'America/Chicago'),
  ('310', 'US', 'California', 'America/Los_Angeles'),
  ('312', 'US', 'Illinois', 'America/Chicago'),
  ('313', 'US', 'Michigan', 'America/Detroit'),
  ('314', 'US', 'Missouri', 'America/Chicago'),
  ('315', 'US', 'New York', 'America/New_York'),
  ('316', 'US', 'Kansas', 'America/Chicago'),
  ('317', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('318', 'US', 'Louisiana', 'America/Chicago'),
  ('319', 'US', 'Iowa', 'America/Chicago'),
  ('320', 'US', 'Minnesota', 'America/Chicago'),
  ('321', 'US', 'Florida', 'America/New_York'),
  ('323', 'US', 'California', 'America/Los_Angeles'),
  ('324', 'US', 'Florida', 'America/New_York'),
  ('325', 'US', 'Texas', 'America/Chicago'),
  ('326', 'US', 'Ohio', 'America/New_York'),
  ('327', 'US', 'Arkansas', 'America/Chicago'),
  ('329', 'US', 'New York', 'America/New_York'),
  ('330', 'US', 'Ohio', 'America/New_York'),
  ('331', 'US', 'Illinois', 'America/Chicago'),
  ('332', 'US', 'New York', 'America/New_York'),
  ('334', 'US', 'Alabama', 'America/Chicago'),
  ('336', 'US', 'North Carolina', 'America/New_York'),
  ('337', 'US', 'Louisiana', 'America/Chicago'),
  ('339', 'US', 'Massachusetts', 'America/New_York'),
  ('340', 'VI', 'U.S. Virgin Islands', 'America/St_Thomas'),
  ('341', 'US', 'California', 'America/Los_Angeles'),
  ('343', 'CA', 'Ontario', 'America/Toronto'),
  ('345', 'KY', 'Cayman Islands', 'America/Cayman'),
  ('346', 'US', 'Texas', 'America/Chicago'),
  ('347', 'US', 'New York', 'America/New_York'),
  ('350', 'US', 'California', 'America/Los_Angeles'),
  ('351', 'US', 'Massachusetts', 'America/New_York'),
  ('352', 'US', 'Florida', 'America/New_York'),
  ('353', 'US', 'Wisconsin', 'America/Chicago'),
  ('354', 'CA', 'Quebec', 'America/Toronto'),
  ('360', 'US', 'Washington', 'America/Los_Angeles'),
  ('361', 'US', 'Texas', 'America/Chicago'),
  ('363', 'US', 'New York', 'America/New_York'),
  ('364', 'US', 'Kentucky', 'America/Chicago'),
  ('365', 'CA', 'Ontario', 'America/Toronto'),
  ('367', 'CA', 'Quebec', 'America/Toronto'),
  ('368', 'CA', 'Alberta', 'America/Edmonton'),
  ('369', 'US', 'California', 'America/Los_Angeles'),
  ('380', 'US', 'Ohio', 'America/New_York'),
  ('382', 'CA', 'Ontario', 'America/Toronto'),
  ('385', 'US', 'Utah', 'America/Denver'),
  ('386', 'US', 'Florida', 'America/New_York'),
  ('401', 'US', 'Rhode Island', 'America/New_York'),
  ('402', 'US', 'Nebraska', 'America/Chicago'),
  ('403', 'CA', 'Alberta', 'America/Edmonton'),
  ('404', 'US', 'Georgia', 'America/New_York'),
  ('405', 'US', 'Oklahoma', 'America/Chicago'),
  ('406', 'US', 'Montana', 'America/Denver'),
  ('407', 'US', 'Florida', 'America/New_York'),
  ('408', 'US', 'California', 'America/Los_Angeles'),
  ('409', 'US', 'Texas', 'America/Chicago'),
  ('410', 'US', 'Maryland', 'America/New_York'),
  ('412', 'US', 'Pennsylvania', 'America/New_York'),
  ('413', 'US', 'Massachusetts', 'America/New_York'),
  ('414', 'US', 'Wisconsin', 'America/Chicago'),
  ('415', 'US', 'California', 'America/Los_Angeles'),
  ('416', 'CA', 'Ontario', 'America/Toronto'),
  ('417', 'US', 'Missouri', 'America/Chicago'),
  ('418', 'CA', 'Quebec', 'America/Toronto'),
  ('419', 'US', 'Ohio', 'America/New_York'),
  ('423', 'US', 'Tennessee', 'America/New_York'),
  ('424', 'US', 'California', 'America/Los_Angeles'),
  ('425', 'US', 'Washington', 'America/Los_Angeles'),
  ('428', 'CA', 'New Brunswick', 'America/Moncton'),
  ('430', 'US', 'Texas', 'America/Chicago'),
  ('431', 'CA', 'Manitoba', 'America/Winnipeg'),
  ('432', 'US', 'Texas', 'America/Chicago'),
  ('434', 'US', 'Virginia', 'America/New_York'),
  ('435', 'US', 'Utah', 'America/Denver'),
  ('436', 'US', 'Ohio', 'America/New_York'),
  ('437', 'CA', 'Ontario', 'America/Toronto'),
  ('438', 'CA', 'Quebec', 'America/Toronto'),
  ('440', 'US', 'Ohio', 'America/New_York'),
  ('441', 'BM', 'Bermuda', 'Atlantic/Bermuda'),
  ('442', 'US', 'California', 'America/Los_Angeles'),
  ('443', 'US', 'Maryland', 'America/New_York'),
  ('445', 'US', 'Pennsylvania', 'America/New_York'),
  ('447', 'US', 'Illinois', 'America/Chicago'),
  ('448', 'US', 'Florida', 'America/Chicago'),
  ('450', 'CA', 'Quebec', 'America/Toronto'),
  ('458', 'US', 'Oregon', 'America/Los_Angeles'),
  ('463', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('464', 'US', 'Illinois', 'America/Chicago'),
  ('468', 'CA', 'Quebec', 'America/Toronto'),
  ('469', 'US', 'Texas', 'America/Chicago'),
  ('470', 'US', 'Georgia', 'America/New_York'),
  ('472', 'US', 'North Carolina', 'America/New_York'),
  ('473', 'GD', 'Grenada', 'America/Grenada'),
  ('474', 'CA', 'Saskatchewan', 'America/Regina'),
  ('475', 'US', 'Connecticut', 'America/New_York'),
  ('478', 'US', 'Georgia', 'America/New_York'),
  ('479', 'US', 'Arkansas', 'America/Chicago'),
  ('480', 'US', 'Arizona', 'America/Phoenix'),
  ('484', 'US', 'Pennsylvania', 'America/New_York'),
  ('501', 'US', 'Arkansas', 'America/Chicago'),
  ('502', 'US', 'Kentucky', 'America/Kentucky/Louisville'),
  ('503', 'US', 'Oregon', 'America/Los_Angeles'),
  ('504', 'US', 'Louisiana', 'America/Chicago'),
  ('505', 'US', 'New Mexico', 'America/Denver'),
  ('506', 'CA', 'New Brunswick', 'America/Moncton'),
  ('507', 'US', 'Minnesota', 'America/Chicago'),
  ('508', 'US', 'Massachusetts', 'America/New_York'),
  ('509', 'US', 'Washington', 'America/Los_Angeles'),
  ('510', 'US', 'California', 'America/Los_Angeles'),
  ('512', 'US', 'Texas', 'America/Chicago'),
  ('513', 'US', 'Ohio', 'America/New_York'),
  ('514', 'CA', 'Quebec', 'America/Toronto'),
  ('515', 'US', 'Iowa', 'America/Chicago'),
  ('516', 'US', 'New York', 'America/New_York'),
  ('517', 'US', 'Michigan', 'America/Detroit'),
  ('518', 'US', 'New York', 'America/New_York'),
  ('519', 'CA', 'Ontario', 'America/Toronto'),
  ('520', 'US', 'Arizona', 'America/Phoenix'),
  ('530', 'US', 'California', 'America/Los_Angeles'),
  ('531', 'US', 'Nebraska', 'America/Chicago'),
  ('534', 'US', 'Wisconsin', 'America/Chicago'),
  ('539', 'US', 'Oklahoma', 'America/Chicago'),
  ('540', 'US', 'Virginia', 'America/New_York'),
  ('541', 'US', 'Oregon', 'America/Los_Angeles'),
  ('548', 'CA', 'Ontario', 'America/Toronto'),
  ('551', 'US', 'New Jersey', 'America/New_York'),
  ('557', 'US', 'Missouri', 'America/Chicago'),
  ('559', 'US', 'California', 'America/Los_Angeles'),
  ('561', 'US', 'Florida', 'America/New_York'),
  ('562', 'US', 'California', 'America/Los_Angeles'),
  ('563', 'US', 'Iowa', 'America/Chicago'),
  ('564', 'US', 'Washington', 'America/Los_Angeles'),
  ('567', 'US', 'Ohio', 'America/New_York'),
  ('570', 'US', 'Pennsylvania', 'America/New_York'),
  ('571', 'US', 'Virginia', 'America/New_York'),
  ('572', 'US', 'Oklahoma', 'America/Chicago'),
  ('573', 'US', 'Missouri', 'America/Chicago'),
  ('574', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('575', 'US', 'New Mexico', 'America/Denver'),
  ('579', 'CA', 'Quebec', 'America/Toronto'),
  ('580', 'US', 'Oklahoma', 'America/Chicago'),
  ('581', 'CA', 'Quebec', 'America/Toronto'),
  ('582', 'US', 'Pennsylvania', 'America/New_York'),
  ('584', 'CA', 'Manitoba', 'America/Winnipeg'),
  ('585', 'US', 'New York', 'America/New_York'),
  ('586', 'US', 'Michigan', 'America/Detroit'),
  ('587', 'CA', 'Alberta', 'America/Edmonton'),
  ('601', 'US', 'Mississippi', 'America/Chicago'),
  ('602', 'US', 'Arizona', 'America/Phoenix'),
  ('603', 'US', 'New Hampshire', 'America/New_York'),
  ('604', 'CA', 'British Columbia', 'America/Vancouver'),
  ('605', 'US', 'South Dakota', 'America/Chicago'),
  ('606', 'US', 'Kentucky', 'America/New_York'),
  ('607', 'US', 'New York', 'America/New_York'),
  ('608', 'US', 'Wisconsin', 'America/Chicago'),
  ('609', 'US', 'New Jersey', 'America/New_York'),
  ('610', 'US', 'Pennsylvania', 'America/New_York'),
  ('612', 'US', 'Minnesota', 'America/Chicago'),
  ('613', 'CA', 'Ontario', 'America/Toronto'),
  ('614', 'US', 'Ohio', 'America/New_York'),
  ('615', 'US', 'Tennessee', 'America/Chicago'),
  ('616', 'US', 'Michigan', 'America/Detroit'),
  ('617', 'US', 'Massachusetts', 'America/New_York'),
  ('618', 'US', 'Illinois', 'America/Chicago'),
  ('619', 'US', 'California', 'America/Los_Angeles'),
  ('620', 'US', 'Kansas', 'America/Chicago'),
  ('623', 'US', 'Arizona', 'America/Phoenix'),
  ('624', 'US', 'New York', 'America/New_York'),
  ('626', 'US', 'California', 'America/Los_Angeles'),
  ('628', 'US', 'California', 'America/Los_Angeles'),
  ('629', 'US', 'Tennessee', 'America/Chicago'),
  ('630', 'US', 'Illinois', 'America/Chicago'),
  ('631', 'US', 'New York', 'America/New_York'),
  ('636', 'US', 'Missouri', 'America/Chicago'),
  ('639', 'CA', 'Saskatchewan', 'America/Regina'),
  ('640', 'US', 'New Jersey', 'America/New_York'),
  ('641', 'US', 'Iowa', 'America/Chicago'),
  ('645', 'US', 'Florida', 'America/New_York'),
  ('646', 'US', 'New York', 'America/New_York'),
  ('647', 'CA', 'Ontario', 'America/Toronto'),
  ('649', 'TC', 'Turks and Caicos Islands', 'America/Grand_Turk'),
  ('650', 'US', 'California', 'America/Los_Angeles'),
  ('651', 'US', 'Minnesota', 'America/Chicago'),
  ('656', 'US', 'Florida', 'America/New_York'),
  ('657', 'US', 'California', 'America/Los_Angeles'),
  ('658', 'JM', 'Jamaica', 'America/Jamaica'),
  ('659', 'US', 'Alabama', 'America/Chicago'),
  ('660', 'US', 'Missouri', 'America/Chicago'),
  ('661', 'US', 'California', 'America/Los_Angeles'),
  ('662', 'US', 'Mississippi', 'America/Chicago'),
  ('664', 'MS', 'Montserrat', 'America/Montserrat'),
  ('667', 'US', 'Maryland', 'America/New_York'),
  ('669', 'US', 'California', 'America/Los_Angeles'),
  ('670', 'MP', 'Northern Mariana Islands', 'Pacific/Saipan'),
  ('671', 'GU', 'Guam', 'Pacific/Guam'),
  ('672', 'CA', 'British Columbia', 'America/Vancouver'),
  ('678', 'US', 'Georgia', 'America/New_York'),
  ('679', 'US', 'Michigan', 'America/Detroit'),
  ('680', 'US', 'New York', 'America/New_York'),
  ('681', 'US', 'West Virginia', 'America/New_York'),
  ('682', 'US', 'Texas', 'America/Chicago'),
  ('683', 'CA', 'Ontario', 'America/Toronto'),
  ('684', 'AS', 'American Samoa', 'Pacific/Pago_Pago'),
  ('686', 'US', 'Virginia', 'America/New_York'),
  ('689', 'US', 'Florida', 'America/New_York'),
  ('701', 'US', 'North Dakota', 'America/Chicago'),
  ('702', 'US', 'Nevada', 'America/Los_Angeles'),
  ('703', 'US', 'Virginia', 'America/New_York'),
  ('704', 'US', 'North Carolina', 'America/New_York'),
  ('705', 'CA', 'Ontario', 'America/Toronto'),
  ('706', 'US', 'Georgia', 'America/New_York'),
  ('707', 'US', 'California', 'America/Los_Angeles'),
  ('708', 'US', 'Illinois', 'America/Chicago'),
  ('709', 'CA', 'Newfoundland and Labrador', 'America/St_Johns'),
  ('712', 'US', 'Iowa', 'America/Chicago'),
  ('713', 'US', 'Texas', 'America/Chicago'),
  ('714', 'US', 'California', 'America/Los_Angeles'),
  ('715', 'US', 'Wisconsin', 'America/Chicago'),
  ('716', 'US', 'New York', 'America/New_York'),
  ('717', 'US', 'Pennsylvania', 'America/New_York'),
  ('718', 'US', 'New York', 'America/New_York'),
  ('719', 'US', 'Colorado', 'America/Denver'),
  ('720', 'US', 'Colorado', 'America/Denver'),
  ('721', 'SX', 'Sint Maarten', 'America/Lower_Princes'),
  ('724', 'US', 'Pennsylvania', 'America/New_York'),
  ('725', 'US', 'Nevada', 'America/Los_Angeles'),
  ('726', 'US', 'Texas', 'America/Chicago'),
  ('727', 'US', 'Florida', 'America/New_York'),
  ('728', 'US', 'Florida', 'America/New_York'),
  ('730', 'US', 'Illinois', 'America/Chicago'),
  ('731', 'US', 'Tennessee', 'America/Chicago'),
  ('732', 'US', 'New Jersey', 'America/New_York'),
  ('734', 'US', 'Michigan', 'America/Detroit'),
  ('737', 'US', 'Texas', 'America/Chicago'),
  ('738', 'US', 'California', 'America/Los_Angeles'),
  ('740', 'US', 'Ohio', 'America/New_York'),
  ('742', 'CA', 'Ontario', 'America/Toronto'),
  ('743', 'US', 'North Carolina', 'America/New_York'),
  ('747', 'US', 'California', 'America/Los_Angeles'),
  ('753', 'CA', 'Ontario', 'America/Toronto'),
  ('754', 'US', 'Florida', 'America/New_York'),
  ('757', 'US', 'Virginia', 'America/New_York'),
  ('758', 'LC', 'Saint Lucia', 'America/St_Lucia'),
  ('760', 'US', 'California', 'America/Los_Angeles'),
  ('762', 'US', 'Georgia', 'America/New_York'),
  ('763', 'US', 'Minnesota', 'America/Chicago'),
  ('765', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('767', 'DM', 'Dominica', 'America/Dominica'),
  ('769', 'US', 'Mississippi', 'America/Chicago'),
  ('770', 'US', 'Georgia', 'America/New_York'),
  ('771', 'US', 'District of Columbia', 'America/New_York'),
  ('772', 'US', 'Florida', 'America/New_York'),
  ('773', 'US', 'Illinois', 'America/Chicago'),
  ('774', 'US', 'Massachusetts', 'America/New_York'),
  ('775', 'US', 'Nevada', 'America/Los_Angeles'),
  ('778', 'CA', 'British Columbia', 'America/Vancouver'),
  ('779', 'US', 'Illinois', 'America/Chicago'),
  ('780', 'CA', 'Alberta', 'America/Edmonton'),
  ('781', 'US', 'Massachusetts', 'America/New_York'),
  ('782', 'CA', 'Nova Scotia and Prince Edward Island', 'America/Halifax'),
  ('784', 'VC', 'Saint Vincent and the Grenadines', 'America/St_Vincent'),
  ('785', 'US', 'Kansas', 'America/Chicago'),
  ('786', 'US', 'Florida', 'America/New_York'),
  ('787', 'PR', 'Puerto Rico', 'America/Puerto_Rico'),
  ('801', 'US', 'Utah', 'America/Denver'),
  ('802', 'US', 'Vermont', 'America/New_York'),
  ('803', 'US', 'South Carolina', 'America/New_York'),
  ('804', 'US', 'Virginia', 'America/New_York'),
  ('805', 'US', 'California', 'America/Los_Angeles'),
  ('806', 'US', 'Texas', 'America/Chicago'),
  ('807', 'CA', 'Ontario', 'America/Toronto'),
  ('808', 'US', 'Hawaii', 'Pacific/Honolulu'),
  ('809', 'DO', 'Dominican Republic', 'America/Santo_Domingo'),
  ('810', 'US', 'Michigan', 'America/Detroit'),
  ('812', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('813', 'US', 'Florida', 'America/New_York'),
  ('814', 'US', 'Pennsylvania', 'America/New_York'),
  ('815', 'US', 'Illinois', 'America/Chicago'),
  ('816', 'US', 'Missouri', 'America/Chicago'),
  ('817', 'US', 'Texas', 'America/Chicago'),
  ('818', 'US', 'California', 'America/Los_Angeles'),
  ('819', 'CA', 'Quebec', 'America/Toronto'),
  ('820', 'US', 'California', 'America/Los_Angeles'),
  ('821', 'US', 'South Carolina', 'America/New_York'),
  ('825', 'CA', 'Alberta', 'America/Edmonton'),
  ('826', 'US', 'Virginia', 'America/New_York'),
  ('828', 'US', 'North Carolina', 'America/New_York'),
  ('829', 'DO', 'Dominican Republic', 'America/Santo_Domingo'),
  ('830', 'US', 'Texas', 'America/Chicago'),
  ('831', 'US', 'California', 'America/Los_Angeles'),
  ('832', 'US', 'Texas', 'America/Chicago'),
  ('835', 'US', 'Pennsylvania', 'America/New_York'),
  ('838', 'US', 'New York', 'America/New_York'),
  ('839', 'US', 'South Carolina', 'America/New_York'),
  ('840', 'US', 'California', 'America/Los_Angeles'),
  ('843', 'US', 'South Carolina', 'America/New_York'),
  ('845', 'US', 'New York', 'America/New_York'),
  ('847', 'US', 'Illinois', 'America/Chicago'),
  ('848', 'US', 'New Jersey', 'America/New_York'),
  ('849', 'DO', 'Dominican Republic', 'America/Santo_Domingo'),
  ('850', 'US', 'Florida', 'America/Chicago'),
  ('854', 'US', 'South Carolina', 'America/New_York'),
  ('856', 'US', 'New Jersey', 'America/New_York'),
  ('857', 'US', 'Massachusetts', 'America/New_York'),
  ('858', 'US', 'California', 'America/Los_Angeles'),
  ('859', 'US', 'Kentucky', 'America/New_York'),
  ('860', 'US', 'Connecticut', 'America/New_York'),
  ('861', 'US', 'Illinois', 'America/Chicago'),
  ('862', 'US', 'New Jersey', 'America/New_York'),
  ('863', 'US', 'Florida', 'America/New_York'),
  ('864', 'US', 'South Carolina', 'America/New_York'),
  ('865', 'US', 'Tennessee', 'America/New_York'),
  ('867', 'CA', 'Yukon, Northwest Territories and Nunavut', 'America/Edmonton'),
  ('868', 'TT', 'Trinidad and Tobago', 'America/Port_of_Spain'),
  ('869', 'KN', 'Saint Kitts and Nevis', 'America/St_Kitts'),
  ('870', 'US', 'Arkansas', 'America/Chicago'),
  ('872', 'US', 'Illinois', 'America/Chicago'),
  ('873', 'CA', 'Quebec', 'America/Toronto'),
  ('876', 'JM', 'Jamaica', 'America/Jamaica'),
  ('878', 'US', 'Pennsylvania', 'America/New_York'),
  ('879', 'CA', 'Newfoundland and Labrador', 'America/St_Johns'),
  ('901', 'US', 'Tennessee', 'America/Chicago'),
  ('902', 'CA', 'Nova Scotia and Prince Edward Island', 'America/Halifax'),
  ('903', 'US', 'Texas', 'America/Chicago'),
  ('904', 'US', 'Florida', 'America/New_York'),
  ('905', 'CA', 'Ontario', 'America/Toronto'),
  ('906', 'US', 'Michigan', 'America/Detroit'),
  ('907', 'US', 'Alaska', 'America/Anchorage'),
  ('908', 'US', 'New Jersey', 'America/New_York'),
  ('909', 'US', 'California', 'America/Los_Angeles'),
  ('910', 'US', 'North Carolina', 'America/New_York'),
  ('912', 'US', 'Georgia', 'America/New_York'),
  ('913', 'US', 'Kansas', 'America/Chicago'),
  ('914', 'US', 'New York', 'America/New_York'),
  ('915', 'US', 'Texas', 'America/Denver'),
  ('916', 'US', 'California', 'America/Los_Angeles'),
  ('917', 'US', 'New York', 'America/New_York'),
  ('918', 'US', 'Oklahoma', 'America/Chicago'),
  ('919', 'US', 'North Carolina', 'America/New_York'),
  ('920', 'US', 'Wisconsin', 'America/Chicago'),
  ('924', 'US', 'Minnesota', 'America/Chicago'),
  ('925', 'US', 'California', 'America/Los_Angeles'),
  ('928', 'US', 'Arizona', 'America/Phoenix'),
  ('929', 'US', 'New York', 'America/New_York'),
  ('930', 'US', 'Indiana', 'America/Indiana/Indianapolis'),
  ('931', 'US', 'Tennessee', 'America/Chicago'),
  ('934', 'US', 'New York', 'America/New_York'),
  ('936', 'US', 'Texas', 'America/Chicago'),
  ('937', 'US', 'Ohio', 'America/New_York'),
  ('938', 'US', 'Alabama', 'America/Chicago'),
  ('939', 'PR', 'Puerto Rico', 'America/Puerto_Rico'),
  ('940', 'US', 'Texas', 'America/Chicago'),
  ('941', 'US', 'Florida', 'America/New_York'),
  ('942', 'CA', 'Ontario', 'America/Toronto'),
  ('943', 'US', 'Georgia', 'America/New_York'),
  ('945', 'US', 'Texas', 'America/Chicago'),
  ('947', 'US', 'Michigan', 'America/Detroit'),
  ('948', 'US', 'Virginia', 'America/New_York'),
  ('949', 'US', 'California', 'America/Los_Angeles'),
  ('951', 'US', 'California', 'America/Los_Angeles'),
  ('952', 'US', 'Minnesota', 'America/Chicago'),
  ('954', 'US', 'Florida', 'America/New_York'),
  ('956', 'US', 'Texas', 'America/Chicago'),
  ('959', 'US', 'Connecticut', 'America/New_York'),
  ('970', 'US', 'Colorado', 'America/Denver'),
  ('971', 'US', 'Oregon', 'America/Los_Angeles'),
  ('972', 'US', 'Texas', 'America/Chicago'),
  ('973', 'US', 'New Jersey', 'America/New_York'),
  ('975', 'US', 'Missouri', 'America/Chicago'),
  ('978', 'US', 'Massachusetts', 'America/New_York'),
  ('979', 'US', 'Texas', 'America/Chicago'),
  ('980', 'US', 'North Carolina', 'America/New_York'),
  ('983', 'US', 'Colorado', 'America/Denver'),
  ('984', 'US', 'North Carolina', 'America/New_York'),
  ('985', 'US', 'Louisiana', 'America/Chicago'),
  ('986', 'US', 'Idaho', 'America/Boise'),
  ('989', 'US', 'Michigan', 'America/Detroit');

-- Functions ----------------------------------------------------------------------------------
-- The number lookups are security definer so that authenticated callers can use them without
-- reading the private tables themselves.
create function internal.number_country(e164 text) returns text
language sql stable security definer set search_path = '' as $$
  select case
    when number_country.e164 !~ '^\+[1-9][0-9]{6,14}$' then null
    when number_country.e164 like '+1%' then
      (select a.country from internal.nanp_area_code a where a.area_code = substr(number_country.e164, 3, 3))
    else
      (select c.country from internal.calling_code c
       where c.prefix in (substr(number_country.e164, 2, 1), substr(number_country.e164, 2, 2),
                          substr(number_country.e164, 2, 3))
       order by length(c.prefix) desc
       limit 1)
  end
$$;
comment on function internal.number_country is
  'ISO country of an E.164 number: by area code under +1 (null for toll-free and unknown codes), else by the '
  'longest matching calling code. Used on import to check a campaign''s allowed countries.';

create function internal.number_timezone(e164 text) returns text
language sql stable security definer set search_path = '' as $$
  select case
    when number_timezone.e164 !~ '^\+[1-9][0-9]{6,14}$' then null
    when number_timezone.e164 like '+1%' then
      (select a.timezone from internal.nanp_area_code a where a.area_code = substr(number_timezone.e164, 3, 3))
    else
      (select c.timezone from internal.calling_code c
       where c.prefix in (substr(number_timezone.e164, 2, 1), substr(number_timezone.e164, 2, 2),
                          substr(number_timezone.e164, 2, 3))
       order by length(c.prefix) desc
       limit 1)
  end
$$;
comment on function internal.number_timezone is
  'Best-guess IANA zone of an E.164 number (area code under +1, else the country''s zone); null when unknown. '
  'The campaign tick falls back to it when a callee has no explicit time zone (ported and mobile numbers move).';

create function internal.normalise_number(input text, default_country text default 'US') returns text
language plpgsql stable security definer set search_path = '' as $$
declare
  -- "+44 (0)20 ..." keeps the national trunk prefix in brackets; it is never dialed.
  digits text := regexp_replace(replace(btrim(input), '(0)', ''), '[[:space:].()-]', '', 'g');
  home text := upper(btrim(default_country));
  code text;
  number text;
begin
  if digits is null or digits !~ '^\+?[0-9]+$' then
    return null;
  end if;

  if digits like '+%' then
    number := digits;
  elsif digits like '00%' then
    number := '+' || substr(digits, 3);
  else
    -- A national number: the default country's calling code (shared codes such as +7 are
    -- listed under their longer prefixes too, so take the shortest code that covers them).
    code := coalesce(
      (select c2.prefix
       from internal.calling_code c1
       join internal.calling_code c2
         on c2.prefix in (substr(c1.prefix, 1, 1), substr(c1.prefix, 1, 2), substr(c1.prefix, 1, 3))
       where c1.country = home
       order by length(c2.prefix), c2.prefix
       limit 1),
      (select '1' from internal.nanp_area_code a where a.country = home limit 1));
    if code is null then
      return null;
    elsif code = '1' then
      number := case
        when digits like '011%' then '+' || substr(digits, 4)
        when length(digits) = 11 and digits like '1%' then '+' || digits
        when length(digits) = 10 then '+1' || digits
      end;
    else
      number := '+' || code || case
        -- Countries whose numbers keep their leading 0 after the calling code.
        when home in ('IT', 'SM', 'VA', 'CI', 'CG') then digits
        when home in ('RU', 'KZ') and digits ~ '^8[0-9]{10}$' then substr(digits, 2)
        else regexp_replace(digits, '^0', '')
      end;
    end if;
  end if;

  if number is null or number !~ '^\+[1-9][0-9]{6,14}$' then
    return null;
  elsif number like '+1%' then
    -- NANP: NXX-NXX-XXXX, area code and exchange never start with 0 or 1.
    return case when number ~ '^\+1[2-9][0-9]{2}[2-9][0-9]{6}$' then number end;
  elsif internal.number_country(number) is null then
    return null;
  end if;
  return number;
end $$;
comment on function internal.normalise_number is
  'E.164 form of a typed phone number, or null when it cannot be one. Accepts +, 00 and (for NANP defaults) 011 '
  'international prefixes, and national numbers of default_country (trunk prefix dropped). Separators '
  '(spaces, dots, dashes, brackets) are ignored; the calling code must belong to a country. Used on campaign '
  'import and wherever a person types a number.';

create function internal.in_window(at timestamptz, tz text, window_start time, window_end time,
  weekdays smallint[]) returns boolean
language sql immutable set search_path = '' as $$
  select extract(isodow from l.t)::smallint = any (in_window.weekdays)
    and l.t::time >= in_window.window_start
    and l.t::time < in_window.window_end
  from (select in_window.at at time zone in_window.tz as t) l
$$;
comment on function internal.in_window is
  'True when the instant, read as local time in tz, falls on one of the ISO weekdays (1 = Monday .. 7 = Sunday) '
  'within [window_start, window_end). The campaign tick asks it before every dial.';

create function internal.next_window_start(at timestamptz, tz text, window_start time, window_end time,
  weekdays smallint[]) returns timestamptz
language plpgsql immutable set search_path = '' as $$
declare
  local_day date;
  offsets interval[];
  candidates timestamptz[] := '{}';
  prev interval;
  cur interval;
  lo timestamptz;
  hi timestamptz;
  mid timestamptz;
  candidate timestamptz;
  best timestamptz;
begin
  if internal.in_window(at, tz, window_start, window_end, weekdays) then
    return at;
  end if;
  -- A window that is never open (no weekday, or start not before end) has no next start.
  if at is null or tz is null or coalesce(cardinality(weekdays), 0) = 0
     or coalesce(window_start >= window_end, true) then
    return null;
  end if;

  -- The UTC offsets in force over the coming days and the instants they change (DST),
  -- each change found by halving the day in which it happens.
  prev := (at at time zone tz) - (at at time zone 'UTC');
  offsets := array[prev];
  for k in 1..10 loop
    hi := at + make_interval(hours => 24 * k);
    cur := (hi at time zone tz) - (hi at time zone 'UTC');
    if cur <> prev then
      lo := hi - interval '24 hours';
      while hi - lo > interval '1 microsecond' loop
        mid := lo + (hi - lo) / 2;
        if (mid at time zone tz) - (mid at time zone 'UTC') = prev then lo := mid; else hi := mid; end if;
      end loop;
      candidates := candidates || hi;
      offsets := offsets || cur;
      prev := cur;
    end if;
  end loop;

  -- The window opens either at window_start wall time on an allowed day (under whichever
  -- offset is in force then: a time repeated by a fall-back happens twice) or at a DST change
  -- (a start time skipped by spring-forward opens at the jump). The earliest open one wins.
  local_day := (at at time zone tz)::date;
  for i in 0..8 loop
    foreach cur in array offsets loop
      candidates := candidates || (((local_day + i) + window_start - cur) at time zone 'UTC');
    end loop;
  end loop;
  foreach candidate in array candidates loop
    if candidate > at and (best is null or candidate < best)
       and internal.in_window(candidate, tz, window_start, window_end, weekdays) then
      best := candidate;
    end if;
  end loop;
  return best;
end $$;
comment on function internal.next_window_start is
  'The instant itself when inside the calling window, else the first later instant the window is open in tz '
  '(up to 8 days ahead, DST changes included); null when it never opens. The campaign tick sets a callee''s '
  'next attempt to it.';

-- Policies -------------------------------------------------------------------------------------
-- No policies: only service_role (which bypasses RLS) and the functions above read them.
alter table internal.calling_code enable row level security;
alter table internal.nanp_area_code enable row level security;

-- Grants ---------------------------------------------------------------------------------------
revoke all on table internal.calling_code, internal.nanp_area_code from public, anon, authenticated;
grant select on table internal.calling_code, internal.nanp_area_code to service_role;

revoke all on function internal.number_country, internal.number_timezone, internal.normalise_number,
  internal.in_window, internal.next_window_start from public;
grant execute on function internal.number_country, internal.number_timezone, internal.normalise_number,
  internal.in_window, internal.next_window_start to authenticated, service_role;
