from hvrescue.cli.main import main

main()
