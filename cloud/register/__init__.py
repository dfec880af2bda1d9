"""The subscriber and meter register the office keeps: accounts with their holders, contacts and billing details,
the meters on each account, edited on a page, in the CLI and the API, and imported or exported as the CSV/XLSX
files an office keeps in Excel (docs/register.md)."""
