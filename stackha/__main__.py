from stackha.cli.entry import main

main()
