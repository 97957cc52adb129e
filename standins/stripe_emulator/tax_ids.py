"""Customer tax IDs: which values Stripe accepts, the country they name, and their verification.

Stripe refuses a value that cannot be of the given type (``tax_id_invalid``) and then checks
the number with the tax authority (VIES for ``eu_vat``), which ends in ``verified`` or
``unverified``. The emulator has no authority to ask: a value whose format is right for its
country is ``verified`` at once, one with a known prefix but the wrong shape is ``unverified``.
Only a verified ``eu_vat`` makes a cross-border EU sale reverse charge (tax.py).
"""

import re

from .errors import StripeError

# Member states by VAT prefix; Greece uses EL, Northern Ireland (goods only) XI.
EU_VAT_PREFIXES = {
    "AT": "AT", "BE": "BE", "BG": "BG", "CY": "CY", "CZ": "CZ", "DE": "DE", "DK": "DK",
    "EE": "EE", "EL": "GR", "ES": "ES", "FI": "FI", "FR": "FR", "HR": "HR", "HU": "HU",
    "IE": "IE", "IT": "IT", "LT": "LT", "LU": "LU", "LV": "LV", "MT": "MT", "NL": "NL",
    "PL": "PL", "PT": "PT", "RO": "RO", "SE": "SE", "SI": "SI", "SK": "SK", "XI": "GB",
}
# The national part of a VAT number, per prefix (the EU Commission's VIES formats).
_EU_VAT_FORMATS = {
    "AT": r"U\d{8}", "BE": r"[01]\d{9}", "BG": r"\d{9,10}", "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}", "DE": r"\d{9}", "DK": r"\d{8}", "EE": r"\d{9}", "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]", "FI": r"\d{8}", "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"\d{11}", "HU": r"\d{8}", "IE": r"\d{7}[A-W][A-IW]?|\d[A-Z+*]\d{5}[A-W]",
    "IT": r"\d{11}", "LT": r"\d{9}|\d{12}", "LU": r"\d{8}", "LV": r"\d{11}", "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}", "PL": r"\d{10}", "PT": r"\d{9}", "RO": r"[1-9]\d{1,9}",
    "SE": r"\d{10}01", "SI": r"\d{8}", "SK": r"\d{10}", "XI": r"\d{9}|\d{12}|GD\d{3}|HA\d{3}",
}
_GB_VAT = re.compile(r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})")
_CH_VAT = re.compile(r"CHE-?\d{3}\.?\d{3}\.?\d{3} ?(MWST|TVA|IVA)")

# Every type Stripe knows (tax_id.type); the emulator checks the formats of the three above.
TYPES = (
    "ad_nrt", "ae_trn", "al_tin", "am_tin", "ao_tin", "ar_cuit", "au_abn", "au_arn", "aw_tin",
    "az_tin", "ba_tin", "bb_tin", "bd_bin", "bf_ifu", "bg_uic", "bh_vat", "bj_ifu", "bo_tin",
    "br_cnpj", "br_cpf", "bs_tin", "by_tin", "ca_bn", "ca_gst_hst", "ca_pst_bc", "ca_pst_mb",
    "ca_pst_sk", "ca_qst", "cd_nif", "ch_uid", "ch_vat", "cl_tin", "cm_niu", "cn_tin", "co_nit",
    "cr_tin", "cv_nif", "de_stn", "do_rcn", "ec_ruc", "eg_tin", "es_cif", "et_tin",
    "eu_oss_vat", "eu_vat", "fo_vat", "gb_vat", "ge_vat", "gi_tin", "gn_nif", "hk_br",
    "hr_oib", "hu_tin", "ic_nif", "id_npwp", "il_vat", "in_gst", "is_vat", "it_cf", "jp_cn",
    "jp_rn", "jp_trn", "ke_pin", "kg_tin", "kh_tin", "kr_brn", "kz_bin", "la_tin", "li_uid",
    "li_vat", "lk_vat", "ma_vat", "md_vat", "me_pib", "mk_vat", "mr_nif", "mx_rfc", "my_frp",
    "my_itn", "my_sst", "ng_tin", "no_vat", "no_voec", "np_pan", "nz_gst", "om_vat", "pe_ruc",
    "ph_tin", "pl_nip", "py_ruc", "ro_tin", "rs_pib", "ru_inn", "ru_kpp", "sa_vat", "sg_gst",
    "sg_uen", "si_tin", "sn_ninea", "sr_fin", "sv_nit", "th_vat", "tj_tin", "tr_tin", "tw_vat",
    "tz_vat", "ua_vat", "ug_tin", "us_ein", "uy_ruc", "uz_tin", "uz_vat", "ve_rif", "vn_tin",
    "za_vat", "zm_tin", "zw_tin",
)


def _invalid(tax_type, param):
    return StripeError(400, f"Invalid value for {tax_type}.", code="tax_id_invalid", param=param)


def check(tax_type, value, param="value"):
    """Returns ``(normalised value, country, format_ok)`` or raises Stripe's 400."""
    if tax_type not in TYPES:
        raise StripeError(400, f"Invalid tax_id type: must be one of {', '.join(TYPES[:8])}, ...",
                          code="parameter_invalid", param="type")
    if not value or not isinstance(value, str):
        raise StripeError(400, "Missing required param: value.", code="parameter_missing",
                          param=param)
    if tax_type == "eu_vat":
        compact = re.sub(r"[\s.\-]", "", value).upper()
        prefix = compact[:2]
        if prefix not in EU_VAT_PREFIXES or len(compact) < 4:
            raise _invalid(tax_type, param)
        national = compact[2:]
        return compact, EU_VAT_PREFIXES[prefix], bool(
            re.fullmatch(_EU_VAT_FORMATS[prefix], national))
    if tax_type == "gb_vat":
        compact = re.sub(r"\s", "", value).upper()
        if not compact.startswith("GB"):
            raise _invalid(tax_type, param)
        return compact, "GB", bool(_GB_VAT.fullmatch(compact))
    if tax_type == "ch_vat":
        normal = value.strip().upper()
        if not normal.startswith("CHE"):
            raise _invalid(tax_type, param)
        return normal, "CH", bool(_CH_VAT.fullmatch(normal))
    # Other types: stored as given; no format check, so verification is unavailable.
    return value.strip(), tax_type[:2].upper(), None


def type_for(value):
    """The tax ID type a buyer's VAT number implies (Checkout asks for the number only)."""
    compact = re.sub(r"[\s.\-]", "", value or "").upper()
    if compact.startswith("CHE"):
        return "ch_vat"
    if compact.startswith("GB"):
        return "gb_vat"
    return "eu_vat"


def verification(format_ok, customer):
    """What Stripe reports after asking the tax authority (see the module docstring)."""
    if format_ok is None:
        return {"status": "unavailable", "verified_address": None, "verified_name": None}
    if not format_ok:
        return {"status": "unverified", "verified_address": None, "verified_name": None}
    address = customer.get("address") or {}
    lines = [address.get("line1"), " ".join(filter(None, (address.get("postal_code"),
                                                         address.get("city"))))]
    return {"status": "verified",
            "verified_address": "\n".join(line for line in lines if line) or None,
            "verified_name": customer.get("name")}


def is_reverse_charge_id(record):
    """A tax ID that makes a cross-border EU business sale reverse charge."""
    return record["type"] == "eu_vat" and record["verification"]["status"] == "verified"
